import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from bailong.config import BailongError
from bailong.embed import EmbedConfig, run
from bailong.embed.zip_tie import NewRow, init_rows, read_new_tokens
from bailong.models import load_model


def test_init_rows_zip_tie_is_the_exact_mean():
    weight = torch.zeros(6, 2)
    weight[:4] = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    gen = torch.Generator().manual_seed(0)
    fallbacks = init_rows(weight, [NewRow(4, (1, 3)), NewRow(5, (0, 9))], "zip-tie", n_old=4, std=0.02, generator=gen)
    assert weight[4].tolist() == [4.0, 5.0]  # mean of rows 1 and 3
    assert weight[5].tolist() == [3.0, 4.0]  # id 9 is unknown: falls back to the mean of all old rows
    assert fallbacks == 1


def test_init_rows_mean_and_random():
    weight = torch.zeros(5, 2)
    weight[:4] = torch.arange(8.0).view(4, 2)
    gen = torch.Generator().manual_seed(0)
    init_rows(weight, [NewRow(4, (0,))], "mean", 4, 0.02, gen)
    assert weight[4].tolist() == [3.0, 4.0]
    init_rows(weight, [NewRow(4, (0,))], "random", 4, 0.02, gen)
    assert weight[4].abs().max() < 0.2 and weight[4].tolist() != [3.0, 4.0]


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
def test_zip_tie_rows_tying_and_old_rows(request, base_fixture, tiny_vocab, tmp_path):
    base = _hand_set_base(request.getfixturevalue(base_fixture), tmp_path / "base")
    _, vocab_dir = tiny_vocab
    result = run(EmbedConfig(base_model=str(base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                             out_dir=tmp_path / "out", eval_chars=200))
    model = load_model(tmp_path / "out" / "model")
    emb = model.get_input_embeddings().weight
    rows = read_new_tokens(vocab_dir / "new_tokens.tsv")
    n_old = result.stats["base_vocab_size"]
    assert emb.shape[0] == n_old + 300
    assert torch.equal(emb[:n_old, 0], torch.arange(n_old, dtype=torch.float32))  # old rows bitwise unchanged
    for row in rows:
        assert emb[row.id, 0].item() == pytest.approx(sum(row.old_ids) / len(row.old_ids), abs=1e-5)
    tied = base_fixture == "tiny_base"
    assert model.config.tie_word_embeddings is tied
    weights = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert ("lm_head.weight" in weights) is not tied
    if not tied:
        out = model.get_output_embeddings().weight
        assert out[rows[0].id, 0].item() == pytest.approx(-sum(rows[0].old_ids) / len(rows[0].old_ids), abs=1e-5)
    meta = json.loads((tmp_path / "out" / "model" / "bailong_embed.json").read_text())
    assert meta["new_token_ids"] == [r.id for r in rows]
    assert result.stats["init"]["bpc_en"] > 0


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
