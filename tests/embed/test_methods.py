import pytest
import torch

from bailong.embed.methods import CharMap, Decomposer, NewRow, fit_char_maps, init_rows, position_weights

GEN = torch.Generator().manual_seed(0)


def _weight(n_old: int, n_new: int, d: int = 2) -> torch.Tensor:
    w = torch.zeros(n_old + n_new, d)
    w[:n_old] = torch.arange(n_old * d, dtype=torch.float32).view(n_old, d)
    return w


def test_position_weights():
    assert position_weights(2, "uniform", 3.0).tolist() == [0.5, 0.5]
    assert position_weights(3, "first", 2.0).tolist() == [0.5, 0.25, 0.25]
    assert position_weights(1, "last", 2.0).tolist() == [1.0]


@pytest.mark.parametrize("weighting,expected", [("uniform", [4.0, 5.0]), ("first", [10 / 3, 13 / 3]), ("last", [14 / 3, 17 / 3])])
def test_zip_tie_is_the_weighted_mean_of_byte_rows(weighting, expected):
    w = _weight(4, 1)  # rows: [0,1] [2,3] [4,5] [6,7]
    dec = Decomposer(byte_ids={0xE4: 1, 0xB8: 3})
    fallbacks = init_rows(w, [NewRow(4, (), b"\xe4\xb8")], "zip-tie", 4, std=0.02, generator=GEN, dec=dec, weighting=weighting)
    assert fallbacks == 0
    assert w[4].tolist() == pytest.approx(expected)


def test_subword_mean_and_fallbacks():
    w = _weight(4, 2)
    fallbacks = init_rows(w, [NewRow(4, (0, 2)), NewRow(5, (0, 9))], "subword-mean", 4, std=0.02, generator=GEN)
    assert w[4].tolist() == [2.0, 3.0]
    assert w[5].tolist() == [3.0, 4.0]  # id 9 is not an old id: the mean of all old rows, counted
    assert fallbacks == 1


def test_zip_tie_unknown_byte_falls_back():
    w = _weight(4, 1)
    assert init_rows(w, [NewRow(4, (), b"\xff")], "zip-tie", 4, std=0.02, generator=GEN, dec=Decomposer({})) == 1
    assert w[4].tolist() == [3.0, 4.0]


def test_mean_random_hewitt():
    w = _weight(4, 3)
    init_rows(w, [NewRow(4, ())], "mean", 4, std=0.02, generator=GEN)
    assert w[4].tolist() == [3.0, 4.0]
    init_rows(w, [NewRow(5, ())], "random", 4, std=0.02, generator=GEN)
    assert w[5].abs().max() < 0.2
    torch.manual_seed(0)
    init_rows(w, [NewRow(6, ())], "hewitt", 4, std=0.02, generator=GEN)
    assert w[6].tolist() == pytest.approx([3.0, 4.0], abs=0.05)  # the mean plus a tiny covariance sample


def test_learned_map_recovers_known_weights():
    torch.manual_seed(0)
    d = 8
    byte_ids = {b: b - 0x80 for b in range(0x80, 0x100)}  # rows 0..127 are the bytes 0x80..0xFF
    weight = torch.randn(128 + 300, d)
    offset = torch.randn(d)
    chars = {}
    for k in range(300):  # 2-byte characters whose rows are 0.3*E[lead] + 0.7*E[trail] + offset
        lead, trail = 0xC2 + k % 30, 0x80 + (k * 7) % 64
        char = bytes([lead, trail]).decode("utf-8")
        if char not in chars:
            weight[128 + k] = 0.3 * weight[byte_ids[lead]] + 0.7 * weight[byte_ids[trail]] + offset
            chars[char] = 128 + k
    fitted = fit_char_maps(weight, Decomposer(byte_ids, chars))[2]
    assert fitted.weights.tolist() == pytest.approx([0.3, 0.7], abs=1e-4)
    assert fitted.offset.tolist() == pytest.approx(offset.tolist(), abs=1e-4)
    assert fitted.r2_heldout == pytest.approx(1.0, abs=1e-4)
    assert isinstance(fitted, CharMap) and fitted.examples == len(chars)
