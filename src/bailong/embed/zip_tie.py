"""New embedding rows from old ones. Rows are always addressed by token id, never by position.

zip-tie (Bailong): a new token's row is the average of the rows of the tokens the OLD tokenizer
splits it into (byte-level pieces or byte-fallback pieces):

    E[new] = sum_i w_i * E[old_i] / sum_i w_i,   w_i = 1 (uniform; other weight functions: issue 4)

The same applies to lm_head when it is not tied to embed_tokens.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from bailong.config import BailongError


@dataclass(frozen=True)
class NewRow:
    id: int
    old_ids: tuple[int, ...]


def read_new_tokens(tsv: Path) -> list[NewRow]:
    """Rows of the vocab stage's new_tokens.tsv (columns id, ..., old_ids, ...)."""
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"id", "old_ids"} - set(reader.fieldnames or [])
        if missing:
            raise BailongError(f"{tsv} lacks column(s) {', '.join(sorted(missing))}")
        return [NewRow(int(r["id"]), tuple(int(x) for x in r["old_ids"].split())) for r in reader]


def init_rows(weight: torch.Tensor, rows: list[NewRow], method: str, n_old: int, std: float, generator: torch.Generator) -> int:
    """Fill `weight[row.id]` for every new row in place; return how many fell back to the mean.

    `weight` is already resized; rows [0, n_old) are the base's and are only read.
    """
    old = weight[:n_old].float()
    mean = old.mean(dim=0)
    fallbacks = 0
    for row in rows:
        if method == "random":
            value = torch.randn(weight.shape[1], generator=generator) * std
        elif method == "mean":
            value = mean
        elif method == "zip-tie":
            valid = [i for i in row.old_ids if 0 <= i < n_old]
            if not valid or len(valid) != len(row.old_ids):
                # Unknown pieces cannot be averaged: the mean of the vocabulary is the safe default.
                fallbacks += 1
                value = mean
            else:
                value = old[list(valid)].mean(dim=0)
        else:
            raise BailongError(f"unknown init method '{method}' (known: zip-tie, mean, random)")
        weight[row.id] = value.to(weight.dtype)
    return fallbacks
