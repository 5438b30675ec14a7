import json
import math

import numpy as np
import pytest
import torch

from bailong.config import BailongError
from bailong.models import load_model, load_tokenizer
from bailong.pretrain import PretrainConfig, run
from bailong.pretrain.data import block_batches, count_blocks, tokenize_corpus
from bailong.pretrain.loop import cosine_with_warmup


def test_cosine_with_warmup():
    assert [round(cosine_with_warmup(s, 2, 10), 3) for s in (0, 1, 2, 10)] == [0.5, 1.0, 1.0, 0.1]


def test_token_cache_joins_documents_with_eos(tiny_embedded, zh_corpus, tmp_path):
    tok = load_tokenizer(tiny_embedded)
    tokens = tokenize_corpus(zh_corpus, tok, tmp_path / "cache")
    docs = [json.loads(line)["text"] for line in zh_corpus.read_text().splitlines()]
    first_doc = tok(docs[0], add_special_tokens=False)["input_ids"]
    assert tokens[: len(first_doc) + 1].tolist() == [*first_doc, tok.eos_token_id]
    assert int((tokens == tok.eos_token_id).sum()) == len(docs)
    (folder,) = (tmp_path / "cache").iterdir()
    assert json.loads((folder / "meta.json").read_text())["documents"] == len(docs)
    # a second call reads the cache: same array, nothing rewritten
    mtime = (folder / "tokens.bin").stat().st_mtime_ns
    assert np.array_equal(tokenize_corpus(zh_corpus, tok, tmp_path / "cache"), tokens)
    assert (folder / "tokens.bin").stat().st_mtime_ns == mtime


def test_block_batches_split_one_global_batch_across_processes(tiny_embedded, zh_corpus, tmp_path):
    tok = load_tokenizer(tiny_embedded)
    tokens = tokenize_corpus(zh_corpus, tok, tmp_path)
    whole = next(block_batches(tokens, 32, batch_size=4, seed=0))
    halves = [next(block_batches(tokens, 32, batch_size=2, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert whole["input_ids"].shape == (4, 32) and torch.equal(whole["input_ids"], whole["labels"])
    assert torch.equal(torch.cat([h["input_ids"] for h in halves]), whole["input_ids"])
    assert "position_ids" not in whole


def test_document_positions_keep_attention_inside_documents(tiny_embedded):
    """Packed with restarting positions, a document's logits equal those of the document alone."""
    tok = load_tokenizer(tiny_embedded)
    model = load_model(tiny_embedded).eval()
    eos = tok.eos_token_id
    a, b = tok("第一篇文件。", add_special_tokens=False)["input_ids"], tok("第二篇。", add_special_tokens=False)["input_ids"]
    packed = np.array([*a, eos, *b, eos])
    batch = next(block_batches(packed, len(packed), batch_size=1, seed=0, eos=eos))
    assert batch["position_ids"][0].tolist() == [*range(len(a) + 1), *range(len(b) + 1)]
    with torch.no_grad():  # use_cache=False as in training: transformers skips packed detection when a KV cache exists
        together = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0, len(a) + 1:]
        alone = model(input_ids=torch.tensor([[*b, eos]]), use_cache=False).logits[0]
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0, len(a) + 1:]
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(leaky, alone, atol=1e-3)  # without them, b sees a


def test_corpus_smaller_than_a_block(tiny_embedded, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"text": "短"}, ensure_ascii=False) + "\n")
    tokens = tokenize_corpus(small, load_tokenizer(tiny_embedded), tmp_path / "cache")
    with pytest.raises(BailongError, match=r"holds \d+ tokens, fewer than block_size=64 tokens"):
        count_blocks(tokens, 64, small)


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


def test_held_out_bits_per_char_every_n_steps_and_tensorboard(tiny_embedded, zh_corpus, tmp_path):
    def train(out, eval_every):
        return run(PretrainConfig(model=tiny_embedded, corpus=zh_corpus, eval_corpus=zh_corpus, out_dir=out, block_size=32,
                                  eval_chars=200, token_cache=tmp_path / "tokens",
                                  train={"max_steps": 4, "lr": 1e-2, "warmup_steps": 1, "eval_every": eval_every}))

    result = train(tmp_path, eval_every=2)
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "bpc_zh" in h] == [2, 4]
    assert all(h["bpc_zh"] > 0 and h["bpc_en"] > 0 for h in history if "bpc_zh" in h)
    # Scoring mid-run must not change training (bitsandbytes' CPU eval repacking once broke gradients).
    train(tmp_path / "plain", eval_every=0)
    plain = [json.loads(line) for line in (tmp_path / "plain" / "history.jsonl").read_text().splitlines()]
    assert [h["loss"] for h in history] == [h["loss"] for h in plain]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"pretrain/loss", "pretrain/lr", "pretrain/bpc_zh", "pretrain/bpc_en"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("pretrain/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("pretrain/bpc_zh")] == [2, 4]
    assert result.stats["processes"] == 1


@pytest.mark.parametrize("quantization", ["int8", "none"])
def test_int8_and_unquantized_bases_train(tiny_embedded, zh_corpus, tmp_path, quantization):
    result = run(PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, block_size=32, token_cache=tmp_path / "tokens",
                                lora={"quantization": quantization}, train={"max_steps": 3, "lr": 1e-2, "warmup_steps": 1}))
    assert result.stats["loss_last"] < result.stats["loss_first"]
    assert (tmp_path / "model" / "model.safetensors").exists()
