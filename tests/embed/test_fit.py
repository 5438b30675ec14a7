import pytest
import torch

from bailong.config import BailongError
from bailong.embed import EmbedConfig, run
from bailong.embed.fit import PieceMixer, fit_lm
from bailong.embed.methods import NewRow
from bailong.io import read_texts
from bailong.models import load_model, load_tokenizer


def test_mixer_starts_at_subword_mean_and_shares_weights_by_position():
    old = torch.arange(12, dtype=torch.float32).view(6, 2)  # rows [0,1] [2,3] ... [10,11]
    rows = [NewRow(6, (0, 2)), NewRow(7, (1, 3)), NewRow(8, (0, 1, 2, 3, 4))]
    mixer = PieceMixer(old, rows, mu=torch.zeros(2))
    with torch.no_grad():
        mixer.blend_logit.fill_(-100.0)
        assert torch.allclose(mixer(), torch.tensor([[2.0, 3.0], [4.0, 5.0], [4.0, 5.0]]))
        assert sorted(mixer.keys) == ["2:0", "2:1", ">4:first", ">4:last", ">4:middle"]
        mixer.logits[mixer.keys["2:1"]] = torch.log(torch.tensor(3.0))  # second piece of 2 weighs 3x the first
        mixer.log_scale.fill_(torch.log(torch.tensor(2.0)).item())
        assert torch.allclose(mixer()[:2], torch.tensor([[6.0, 8.0], [10.0, 12.0]]))  # 2 * (0.25 a + 0.75 b)
        mixer.blend_logit.fill_(100.0)  # all the way to mu
        assert mixer().abs().max().item() == pytest.approx(0.0)


@pytest.mark.parametrize("base_fixture", ["tiny_base", "tiny_base_untied"])
def test_fit_lowers_the_fitting_loss_and_keeps_old_rows(request, base_fixture, tiny_vocab, zh_corpus, tmp_path):
    _, vocab_dir = tiny_vocab
    result = run(EmbedConfig(base_model=str(request.getfixturevalue(base_fixture)), tokenizer=vocab_dir / "tokenizer",
                             new_tokens=vocab_dir / "new_tokens.tsv", out_dir=tmp_path / "out", eval_chars=200,
                             method="zip-tie-learned", fit_corpus=zh_corpus, fit_chars=2000, fit_steps=8, fit_lr=0.1))
    fit = result.stats["fit_lm"]
    assert fit["objective"] == "lm-loss" and fit["steps"] == 8
    assert fit["loss_after"] < fit["loss_before"]
    assert ("lm_head" in fit) is (base_fixture == "tiny_base_untied")
    base = load_model(request.getfixturevalue(base_fixture))
    model = load_model(tmp_path / "out" / "model")
    n_old = result.stats["base_vocab_size"]
    assert torch.equal(model.get_input_embeddings().weight[:n_old], base.get_input_embeddings().weight)
    assert model.config.tie_word_embeddings is (base_fixture == "tiny_base")


def test_fit_writes_rows_in_place_and_restores_requires_grad(tiny_embedded, zh_corpus):
    model, tok = load_model(tiny_embedded), load_tokenizer(tiny_embedded)
    n_old = 400
    rows = [NewRow(i, (i % 50, (i * 7) % 300)) for i in range(n_old, len(tok))]
    before = model.get_input_embeddings().weight.detach().clone()
    fit_lm(model, rows, n_old, len(tok), [], tok, read_texts(zh_corpus, 1000), steps=2, lr=0.1, block_size=64)
    after = model.get_input_embeddings().weight
    assert torch.equal(after[:n_old], before[:n_old])
    assert not torch.equal(after[n_old : len(tok)], before[n_old : len(tok)])
    assert all(p.requires_grad for p in model.parameters())


def test_lm_fit_needs_training_text(tiny_base, tiny_vocab, tmp_path):
    _, vocab_dir = tiny_vocab
    with pytest.raises(BailongError, match="needs fit_corpus"):
        run(EmbedConfig(base_model=str(tiny_base), tokenizer=vocab_dir / "tokenizer", new_tokens=vocab_dir / "new_tokens.tsv",
                        out_dir=tmp_path / "out", method="zip-tie-learned"))
