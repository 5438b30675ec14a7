import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from bailong.config import BailongError
from bailong.embed import EmbedCompareConfig, EmbedConfig, run
from bailong.embed.decompose import read_new_tokens
from bailong.models import load_model, load_tokenizer
from bailong.vocab.bytelevel import bytes_to_unicode


def _hand_set_base(src, dst):
    """Copy of a base whose embedding row i is filled with the value i: averages become checkable."""
    shutil.copytree(src, dst)
    model = load_model(dst)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.copy_(torch.arange(emb.shape[0], dtype=torch.float32)[:, None].expand_as(emb))
        if not model.config.tie_word_embeddings:
            out = model.get_output_embeddings().weight
            out.copy_(-torch.arange(out.shape[0], dtype=torch.float32)[:, None].expand_as(out))
    model.save_pretrained(dst)
    return dst


@pytest.mark.parametrize("base_fixture", ["tiny_base", "tiny_base_untied"])
def test_zip_tie_rows_padding_tying_and_old_rows(request, base_fixture, tiny_vocab, tmp_path):
    base = _hand_set_base(request.getfixturevalue(base_fixture), tmp_path / "base")
    _, vocab_dir = tiny_vocab
    result = run(EmbedConfig(base_model=str(base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                             out_dir=tmp_path / "out", eval_chars=200))
    model = load_model(tmp_path / "out" / "model")
    tok = load_tokenizer(tmp_path / "out" / "model")
    emb = model.get_input_embeddings().weight
    n_old = result.stats["base_vocab_size"]
    assert emb.shape[0] % 64 == 0 and emb.shape[0] >= len(tok) > emb.shape[0] - 64
    assert torch.equal(emb[:n_old, 0], torch.arange(n_old, dtype=torch.float32))  # old rows bitwise unchanged
    byte_id = {t: i for t, i in tok.get_vocab().items() if len(t) == 1}
    for row in read_new_tokens(vocab_dir / "new_tokens.tsv", "bytelevel"):
        ids = [byte_id[bytes_to_unicode()[b]] for b in row.raw]
        assert emb[row.id, 0].item() == pytest.approx(sum(ids) / len(ids), abs=1e-4)
    meta = json.loads((tmp_path / "out" / "model" / "bailong_embed.json").read_text())
    assert meta["pad_ids"] == list(range(len(tok), emb.shape[0]))
    assert model.generation_config.suppress_tokens == meta["pad_ids"]
    tied = base_fixture == "tiny_base"
    assert model.config.tie_word_embeddings is tied
    assert ("lm_head.weight" in load_file(tmp_path / "out" / "model" / "model.safetensors")) is not tied
    if not tied:
        out = model.get_output_embeddings().weight
        row = read_new_tokens(vocab_dir / "new_tokens.tsv", "bytelevel")[0]
        ids = [byte_id[bytes_to_unicode()[b]] for b in row.raw]
        assert out[row.id, 0].item() == pytest.approx(-sum(ids) / len(ids), abs=1e-4)


def test_learned_method_reports_its_fit(tiny_base, tiny_vocab, tmp_path):
    _, vocab_dir = tiny_vocab
    result = run(EmbedConfig(base_model=str(tiny_base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                             out_dir=tmp_path / "out", eval_chars=200, method="zip-tie-learned", fit="least-squares"))
    assert result.stats["fallback_to_mean_embed_tokens"] == 0
    assert "fit_embed_tokens" in result.stats  # {} when the old vocabulary has no multi-byte characters to learn from


def test_shifted_ids_are_refused(tiny_base, tiny_vocab, tmp_path):
    _, vocab_dir = tiny_vocab
    shifted = tmp_path / "tok"
    shutil.copytree(vocab_dir / "tokenizer", shifted)
    spec = json.loads((shifted / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (shifted / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(BailongError, match="changes the ids of 2 base tokens"):
        run(EmbedConfig(base_model=str(tiny_base), tokenizer=shifted, new_tokens=vocab_dir / "new_tokens.tsv", out_dir=tmp_path / "o"))


def test_compare_writes_a_table(tiny_base, tiny_vocab, zh_corpus, tmp_path):
    from bailong.embed.compare import compare

    _, vocab_dir = tiny_vocab
    result = compare(EmbedCompareConfig(base_model=str(tiny_base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                                        eval_corpus=zh_corpus, out_dir=tmp_path, eval_chars=300, methods=["random", "mean", "zip-tie"],
                                        weightings=["uniform", "last"]))
    assert [r["method"] for r in result["rows"]] == ["base model, base tokenizer", "random", "mean", "zip-tie (uniform)", "zip-tie (last)"]
    assert all(r["bpc_en"] > 0 and r["bpc_zh"] > 0 for r in result["rows"])
    assert (tmp_path / "compare.md").read_text().splitlines()[2].startswith("| method | bpc_en | bpc_zh |")
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_compare_runs_both_learned_fits_and_skips_lm_loss_without_training_text(tiny_base, tiny_vocab, zh_corpus, tmp_path):
    from bailong.embed.compare import compare

    _, vocab_dir = tiny_vocab
    common = dict(base_model=str(tiny_base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                  eval_corpus=zh_corpus, eval_chars=300, methods=["zip-tie-learned"], fit_steps=2, fit_chars=1000)
    rows = compare(EmbedCompareConfig(out_dir=tmp_path / "a", corpus=zh_corpus, **common))["rows"]
    assert [r["method"] for r in rows[1:]] == ["zip-tie-learned (lm-loss)", "zip-tie-learned (least-squares)"]
    assert rows[1]["fit"].startswith("fitting-text loss ") and rows[1]["bpc_zh"] > 0
    skipped = compare(EmbedCompareConfig(out_dir=tmp_path / "b", **common))["rows"]
    assert skipped[1] == {"method": "zip-tie-learned (lm-loss)", "fit": "skipped: needs training text (set corpus)"}
