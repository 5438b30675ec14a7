"""Shared fixtures: a tiny byte-level BPE model built from configs (random weights, no downloads).

zh-TW text for tests comes from bailong's own demo chat set (written for this project), so the
suite runs without ../shared; tests that need ../shared/data skip with a message when it is absent.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
ENGLISH = (
    "The quick brown fox jumps over the lazy dog. A tokenizer splits text into tokens, and a model "
    "predicts the next token. Continued pretraining adapts a model to a new language. "
) * 20


def demo_chat_texts() -> list[str]:
    path = resources.files("bailong") / "data" / "demo_chat.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]


@pytest.fixture(scope="session")
def zh_texts() -> list[str]:
    return demo_chat_texts()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs ../shared/data beside the repository ({SHARED} is absent)")
    return SHARED / "data"


def build_tiny_base(folder: Path, tie: bool = True, vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer trained on English only and a random tiny Llama, saved as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([ENGLISH], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny_base"))


@pytest.fixture(scope="session")
def tiny_base_untied(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny_base_untied"), tie=False)


@pytest.fixture(scope="session")
def zh_corpus(tmp_path_factory, zh_texts) -> Path:
    """A corpus-stage style train.jsonl of zh-TW text."""
    path = tmp_path_factory.mktemp("corpus") / "train.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(zh_texts):
            f.write(json.dumps({"id": str(i), "text": text, "source": "demo-chat"}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_vocab(tiny_base, zh_corpus, tmp_path_factory):
    """(StageResult, out_dir) of the vocab stage adding 300 zh tokens to the tiny base."""
    from bailong.vocab import VocabConfig, run

    out = tmp_path_factory.mktemp("vocab")
    result = run(VocabConfig(base_model=str(tiny_base), corpus=zh_corpus, eval_corpus=zh_corpus, out_dir=out, new_tokens=300, coverage=[]))
    return result, out


@pytest.fixture(scope="session")
def tiny_embedded(tiny_base, tiny_vocab, tmp_path_factory) -> Path:
    """The embed stage's model/ folder: tiny base + 300 zip-tie rows."""
    from bailong.embed import EmbedConfig, run

    _, vocab_dir = tiny_vocab
    out = tmp_path_factory.mktemp("embed")
    run(EmbedConfig(base_model=str(tiny_base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                    out_dir=out, eval_chars=200))
    return out / "model"


@pytest.fixture(scope="session")
def tiny_chat(tiny_embedded, tmp_path_factory) -> Path:
    """tiny_embedded with the ChatML template the sft stage installs: a model the bench can ask questions."""
    import shutil

    from bailong.models import load_tokenizer
    from bailong.sft.data import set_chat_template

    folder = tmp_path_factory.mktemp("tiny_chat") / "model"
    shutil.copytree(tiny_embedded, folder)
    tok = load_tokenizer(folder)
    assert set_chat_template(tok) == "chatml"
    tok.save_pretrained(folder)
    return folder
