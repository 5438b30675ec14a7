"""GGUF export of tiny extended models: the tokenizer and the weights survive a read-back."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bailong.config import BailongError
from bailong.export.gguf import default_samples, export_and_verify, export_gguf, verify_gguf

ZH = ["臺灣的夜市小吃：蚵仔煎、臭豆腐。", "「你好」，《書名》……！？", "emoji 😀🇹🇼 mixed 中英 text 123", "𠀀𠀁𪚥 (CJK Extension B)"]


def test_byte_level_extended_model_round_trips(tiny_embedded, tmp_path):
    config = json.loads((tiny_embedded / "config.json").read_text())
    out = tmp_path / "tiny.gguf"
    summary = export_gguf(tiny_embedded, out, "f32")
    assert summary["tokenizer"] == "gpt2" and summary["pre"] == "gpt-2"
    assert summary["tokens"] == config["vocab_size"]  # padded to the embedding rows
    assert summary["padding_tokens"] == config["vocab_size"] - 657  # 357 base + 300 zh-TW tokens
    assert summary["tensors"] == 2 * 9 + 2  # 9 per layer, token_embd and output_norm; tied: no output.weight

    samples = default_samples() + ZH
    check = verify_gguf(tiny_embedded, out, samples, logits=True)
    assert check["transformers_same_ids"] == len(samples)
    assert check["transformers_round_trip"] == len(samples)
    assert check["max_abs_logit_diff"] == 0.0  # f32: q/k permuted to llama.cpp's layout and back exactly

    f16 = verify_gguf(tiny_embedded, export_gguf(tiny_embedded, tmp_path / "f16.gguf", "f16") and tmp_path / "f16.gguf",
                      ZH, logits=True)
    assert 0 < f16["max_abs_logit_diff"] < 0.01 and f16["same_argmax"] == 1.0


def test_q8_0_and_untied_output(tiny_base_untied, tmp_path):
    out = tmp_path / "q8.gguf"
    summary = export_gguf(tiny_base_untied, out, "q8_0")
    assert summary["tensors"] == 2 * 9 + 3  # output.weight is written when embeddings are untied
    check = verify_gguf(tiny_base_untied, out, ZH, logits=True)
    assert check["max_abs_logit_diff"] < 0.05


def test_sentencepiece_extended_model_round_trips(shared_data, zh_corpus, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from bailong.models import load_tokenizer
    from bailong.vocab import VocabConfig
    from bailong.vocab import run as vocab_run

    base = tmp_path / "llama2"
    base.mkdir()
    shutil.copy(shared_data.parent / "fixtures" / "llama2-tokenizer" / "tokenizer.model", base / "tokenizer.model")
    vocab = vocab_run(VocabConfig(base_model=str(base), corpus=zh_corpus, out_dir=tmp_path / "vocab", new_tokens=400, coverage=[]))
    model_dir = tmp_path / "model"
    shutil.copytree(vocab.artifacts["tokenizer"], model_dir)
    n = len(load_tokenizer(model_dir))
    assert n == 32_400
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=32_448, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, tie_word_embeddings=False)).save_pretrained(model_dir)

    samples = default_samples()
    result = export_and_verify(model_dir, tmp_path / "zh.gguf", "f16", logits=True)
    assert result["export"]["tokenizer"] == "llama" and result["export"]["padding_tokens"] == 48
    check = result["verify"]
    assert check["sentencepiece_same_ids"] == len(samples)  # the file's own pieces/scores/types, through sentencepiece
    # transformers' reader differs only where a line starts with a space (it drops the dummy prefix there)
    assert check["transformers_same_ids"] == len(samples) - sum(s[:1].isspace() for s in samples)
    assert check["same_argmax"] == 1.0
    saved = json.loads((tmp_path / "zh.gguf.json").read_text())
    assert saved["verify"]["sentencepiece_same_ids"] == len(samples)


def test_unsupported_architecture_and_oversized_tokenizer_are_refused(tiny_base, tmp_path):
    other = tmp_path / "gpt2"
    shutil.copytree(tiny_base, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(BailongError, match="supports LlamaForCausalLM, MistralForCausalLM; .* is Qwen2ForCausalLM"):
        export_gguf(other, tmp_path / "x.gguf")
    (other / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))
    with pytest.raises(BailongError, match="the tokenizer has 357 tokens but the model only 100 embedding rows"):
        export_gguf(other, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_llama_cpp_reads_and_runs_the_export(tiny_embedded, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional: pip install llama-cpp-python)")
    out = tmp_path / "tiny.gguf"
    export_gguf(tiny_embedded, out, "f16")
    check = verify_gguf(tiny_embedded, out, default_samples() + ZH, logits=True)
    assert check["llama_cpp_same_ids"] == check["samples"]
    assert check["llama_cpp_max_abs_logit_diff"] < 0.01 and check["llama_cpp_same_argmax"] == 1.0
