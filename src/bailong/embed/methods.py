"""Initial rows for new tokens, from the rows of the old vocabulary. Rows are addressed by id.

Each method maps the old matrix E (rows [0, n_old)) and a new token to a row:

- random:        N(0, initializer_range^2): what resize_token_embeddings would do.
- mean:          mean of all old rows.
- hewitt:        mean plus a tiny sample from the rows' covariance (Hewitt 2021; as transformers' mean_resizing).
- subword-mean:  mean of the rows of the pieces the OLD tokenizer splits the token into.
- zip-tie:       weighted mean of the rows of the old single-BYTE tokens of the token's UTF-8
                 bytes (Bailong). Weightings: uniform, first (first byte emphasized), last.
- zip-tie-learned: per character, a map fitted by least squares from byte rows to character rows
                 (per byte position weights plus an offset), trained on characters the old
                 vocabulary has both as one token and as bytes; characters the old vocabulary
                 has as one token keep that row; a token is the mean of its characters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)
METHODS = ("random", "mean", "hewitt", "subword-mean", "zip-tie", "zip-tie-learned")
WEIGHTINGS = ("uniform", "first", "last")


@dataclass(frozen=True)
class NewRow:
    id: int
    old_ids: tuple[int, ...]  # the old tokenizer's segmentation (from new_tokens.tsv)
    raw: bytes = b""  # the token's UTF-8 bytes (SentencePiece '▁' as a space)


@dataclass
class Decomposer:
    """How the old vocabulary spells bytes and characters (ids of single-byte and single-char tokens)."""

    byte_ids: dict[int, int]
    char_ids: dict[str, int] = field(default_factory=dict)

    def bytes_of(self, raw: bytes) -> list[int] | None:
        ids = [self.byte_ids.get(b) for b in raw]
        return None if any(i is None for i in ids) else ids


def position_weights(n: int, weighting: str, emphasis: float) -> torch.Tensor:
    """Normalized weights for n pieces; 'first'/'last' give that piece `emphasis` times the others.

    >>> position_weights(3, "last", 2.0).tolist()
    [0.25, 0.25, 0.5]
    """
    w = torch.ones(n)
    if n > 1 and weighting == "first":
        w[0] = emphasis
    elif n > 1 and weighting == "last":
        w[-1] = emphasis
    return w / w.sum()


def _chars(raw: bytes) -> list[bytes]:
    """UTF-8 characters of raw bytes; a trailing partial character is kept as its bytes."""
    out, i = [], 0
    while i < len(raw):
        b = raw[i]
        n = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
        out.append(raw[i : i + n])
        i += n
    return out


@dataclass
class CharMap:
    """Fitted byte->character map for characters of `length` bytes: sum_i w_i E[b_i] + offset."""

    length: int
    weights: torch.Tensor
    offset: torch.Tensor
    r2_train: float
    r2_heldout: float
    examples: int

    def __call__(self, byte_rows: torch.Tensor) -> torch.Tensor:
        return self.weights @ byte_rows + self.offset


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    sse = ((pred - target) ** 2).sum()
    sst = ((target - target.mean(dim=0)) ** 2).sum()
    return round(1 - (sse / sst).item(), 4) if sst > 0 else float("nan")


def fit_char_maps(weight: torch.Tensor, dec: Decomposer, heldout: float = 0.2, seed: int = 0) -> dict[int, CharMap]:
    """Fit one map per character byte-length from old single-character tokens (a held-out split for R^2)."""
    examples: dict[int, list[tuple[list[int], int]]] = {}
    for char, cid in dec.char_ids.items():
        raw = char.encode("utf-8")
        ids = dec.bytes_of(raw)
        if len(raw) >= 2 and ids is not None:
            examples.setdefault(len(raw), []).append((ids, cid))
    maps = {}
    gen = torch.Generator().manual_seed(seed)
    for length, rows in sorted(examples.items()):
        if len(rows) < 10:
            continue
        order = torch.randperm(len(rows), generator=gen).tolist()
        cut = max(1, int(len(rows) * heldout))
        test, train = [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]

        def stack(sample):
            x = torch.stack([weight[ids] for ids, _ in sample])  # (T, length, d)
            y = torch.stack([weight[cid] for _, cid in sample])  # (T, d)
            return x, y

        x, y = stack(train)
        xm, ym = x.mean(dim=0), y.mean(dim=0)
        # Least squares for the per-position weights on centered data; the offset absorbs the means.
        design = (x - xm).permute(0, 2, 1).reshape(-1, length)  # (T*d, length)
        w = torch.linalg.lstsq(design, (y - ym).reshape(-1, 1)).solution.squeeze(1)
        offset = ym - w @ xm
        fitted = CharMap(length, w, offset, 0.0, 0.0, len(rows))
        fitted.r2_train = _r2(torch.stack([fitted(r) for r in x]), y)
        xt, yt = stack(test)
        fitted.r2_heldout = _r2(torch.stack([fitted(r) for r in xt]), yt)
        maps[length] = fitted
    return maps


def init_rows(weight: torch.Tensor, rows: list[NewRow], method: str, n_old: int, *, std: float, generator: torch.Generator,
              dec: Decomposer | None = None, weighting: str = "uniform", emphasis: float = 2.0,
              maps: dict[int, CharMap] | None = None) -> int:
    """Fill weight[row.id] for every new row in place (float32 math); return how many fell back to the mean.

    Rows [0, n_old) are only read. A token that cannot be decomposed (an id outside the old
    vocabulary, a byte the old vocabulary lacks) falls back to the mean, and is counted.
    """
    old = weight[:n_old].float()
    mean = old.mean(dim=0)
    cov_sample = None
    if method == "hewitt":
        centered = old - mean
        cov = centered.T @ centered / max(1, n_old - 1)
        dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=1e-5 * cov + 1e-9 * torch.eye(cov.shape[0]))
        cov_sample = dist.sample((len(rows),))
    fallbacks = 0
    for k, row in enumerate(rows):
        value = None
        if method == "random":
            value = torch.randn(weight.shape[1], generator=generator) * std
        elif method == "mean":
            value = mean
        elif method == "hewitt":
            value = cov_sample[k]
        elif method == "subword-mean":
            if row.old_ids and all(0 <= i < n_old for i in row.old_ids):
                value = old[list(row.old_ids)].mean(dim=0)
        elif method == "zip-tie":
            ids = dec.bytes_of(row.raw) if row.raw else None
            if ids:
                value = position_weights(len(ids), weighting, emphasis) @ old[ids]
        elif method == "zip-tie-learned":
            value = _learned_row(old, row.raw, dec, maps or {})
        if value is None:
            fallbacks += 1
            value = mean
        weight[row.id] = value.to(weight.dtype)
    return fallbacks


def _learned_row(old: torch.Tensor, raw: bytes, dec: Decomposer, maps: dict[int, CharMap]) -> torch.Tensor | None:
    if not raw:
        return None
    parts = []
    for char_bytes in _chars(raw):
        char = char_bytes.decode("utf-8", errors="ignore")
        ids = dec.bytes_of(char_bytes)
        if char and char in dec.char_ids:
            parts.append(old[dec.char_ids[char]])
        elif ids is None:
            return None
        elif len(char_bytes) in maps:
            parts.append(maps[len(char_bytes)](old[ids]))
        else:
            parts.append(old[ids].mean(dim=0))
    return torch.stack(parts).mean(dim=0)
