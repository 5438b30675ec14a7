"""Extend a byte-level BPE tokenizer (GPT-2 / Llama 3 / Qwen / SmolLM2 style) without touching old ids.

A byte-level BPE encodes a pre-token by mapping its UTF-8 bytes to printable symbols and applying
merges in rank order. To make the *tokenizer itself* produce a new token (rather than pre-splitting
it out as an HF "added token"), we append vocabulary entries and merges after all existing ones.

Appended merges rank below every base merge, so the base merges fire first and may leave pieces
that differ from those the new token was learned from. So for each new token we ask the current
tokenizer how it splits the token's bytes and append the merges that join exactly those pieces,
left to right. Any intermediate piece this needs is appended as a token too (it is counted).
This keeps the extension lossless by construction: merges only concatenate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (the byte-level alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def symbols_to_bytes(token: str) -> bytes:
    """'Ã¤' style byte-level symbols -> raw bytes. Raises KeyError for a non byte-level string."""
    table = unicode_to_bytes()
    return bytes(table[c] for c in token)


def text_to_symbols(text: str) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply merges to one pre-token: always the lowest-ranked adjacent pair, leftmost first.

    >>> bpe("abc", {("b", "c"): 0, ("a", "bc"): 1})
    ['abc']
    """
    parts = list(word)
    while len(parts) > 1:
        rank, i = min((ranks.get((parts[j], parts[j + 1]), math.inf), j) for j in range(len(parts) - 1))
        if rank == math.inf:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


@dataclass
class NewToken:
    id: int
    token: str  # byte-level symbols, as stored in tokenizer.json
    old_pieces: list[str]  # how the BASE tokenizer splits it
    intermediate: bool  # added only so that a learned token can be reached


def qualifies(token: str) -> bool:
    """A learned token is a zh-TW candidate when it has a non-ASCII byte: ASCII-only tokens are
    English/code, and leaving them out keeps English segmentation exactly as it was."""
    return any(b >= 0x80 for b in symbols_to_bytes(token))


def extend(model: dict, learned_merges: list[tuple[str, str]], n_new: int, first_id: int) -> list[NewToken]:
    """Append up to `n_new` tokens (learned order) to a tokenizer.json BPE `model` dict, in place.

    Args:
        model: the "model" object of tokenizer.json (type BPE); vocab and merges are extended.
        learned_merges: merges of a BPE trained on the target text with the same byte alphabet.
        n_new: how many tokens to add, intermediates included.
        first_id: id of the first new token (after every base and special id).
    Returns:
        the tokens added, in id order.
    """
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    ranks = {pair: i for i, pair in enumerate(merges)}
    base_ranks = dict(ranks)
    added: list[NewToken] = []
    next_id = first_id

    for a, b in learned_merges:
        if len(added) >= n_new:
            break
        target = a + b
        if target in vocab or not qualifies(target):
            continue
        pieces = bpe(target, ranks)
        # Join the current pieces left to right; every step is one appended merge.
        steps, current = [], pieces[0]
        for piece in pieces[1:]:
            steps.append((current, piece))
            current += piece
        new_in_steps = [left + right for left, right in steps if left + right not in vocab]
        if len(added) + len(new_in_steps) > n_new:
            break
        for left, right in steps:
            joined = left + right
            if joined not in vocab:
                vocab[joined] = next_id
                added.append(NewToken(next_id, joined, bpe(joined, base_ranks), joined != target))
                next_id += 1
            if (left, right) not in ranks:
                ranks[(left, right)] = len(merges)
                merges.append((left, right))
    model["merges"] = [list(m) for m in merges]
    return added
