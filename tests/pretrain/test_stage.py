import json
import math

import pytest
import torch

from bailong.config import BailongError
from bailong.models import load_model, load_tokenizer
from bailong.pretrain import PretrainConfig, run
from bailong.pretrain.data import block_batches, pack_blocks
from bailong.pretrain.loop import cosine_with_warmup


def test_cosine_with_warmup():
    assert [round(cosine_with_warmup(s, 2, 10), 3) for s in (0, 1, 2, 10)] == [0.5, 1.0, 1.0, 0.1]


def test_pack_blocks_joins_documents_with_eos(tiny_embedded, zh_corpus):
    tok = load_tokenizer(tiny_embedded)
    blocks = pack_blocks(zh_corpus, tok, block_size=32, max_blocks=40)
    assert len(blocks) == 40 and all(len(b) == 32 for b in blocks)
    first_doc = tok(json.loads(zh_corpus.read_text().splitlines()[0])["text"], add_special_tokens=False)["input_ids"]
    flat = [t for b in blocks for t in b]
    assert flat[: len(first_doc) + 1] == [*first_doc, tok.eos_token_id]
    batch = next(block_batches(blocks, batch_size=2, seed=0))
    assert batch["input_ids"].shape == (2, 32) and torch.equal(batch["input_ids"], batch["labels"])


def test_corpus_smaller_than_a_block(tiny_embedded, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"text": "短"}, ensure_ascii=False) + "\n")
    with pytest.raises(BailongError, match="fewer than block_size=64 tokens"):
        pack_blocks(small, load_tokenizer(tiny_embedded), 64, 10)


def test_block_size_above_max_positions(tiny_embedded, zh_corpus, tmp_path):
    with pytest.raises(BailongError, match="block_size 1024 exceeds the model's max_position_embeddings 512"):
        run(PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, block_size=1024, train={"max_steps": 1}))


def test_qlora_new_rows_only(tiny_embedded, zh_corpus, tmp_path):
    result = run(PretrainConfig(model=tiny_embedded, corpus=zh_corpus, eval_corpus=zh_corpus, out_dir=tmp_path, block_size=64,
                                eval_chars=300, train={"max_steps": 4, "batch_size": 2, "lr": 1e-2, "warmup_steps": 1}))
    s = result.stats
    assert math.isfinite(s["loss_last"]) and s["tokens_trained"] == 4 * 2 * 64
    before = load_model(tiny_embedded).get_input_embeddings().weight
    after_model = load_model(tmp_path / "model")
    after = after_model.get_input_embeddings().weight
    new_ids = json.loads((tiny_embedded / "bailong_embed.json").read_text())["new_token_ids"]
    old = torch.ones(before.shape[0], dtype=torch.bool)
    old[new_ids] = False
    assert torch.equal(after[old], before[old])  # old rows bitwise unchanged
    assert not torch.equal(after[new_ids], before[new_ids])  # new rows trained
    assert after_model.get_output_embeddings().weight.data_ptr() == after.data_ptr()  # still tied
    assert not any("lora" in k for k in after_model.state_dict())  # merged: a plain model
    assert (tmp_path / "loss.png").stat().st_size > 0
