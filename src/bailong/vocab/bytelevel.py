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
    token: str  # as stored in the tokenizer (byte-level symbols, or a SentencePiece piece)
    old_pieces: list[str]  # how the BASE tokenizer splits it
    origin: str  # "coverage" (a required character), "learned", or "intermediate" (needed to reach one)


def qualifies(token: str) -> bool:
    """A learned token is a zh-TW candidate when it has a non-ASCII byte: ASCII-only tokens are
    English/code, and leaving them out keeps English segmentation exactly as it was."""
    return any(b >= 0x80 for b in symbols_to_bytes(token))


def extend(model: dict, targets: list[tuple[str, str]], n_new: int, first_id: int) -> list[NewToken]:
    """Append up to `n_new` tokens to a tokenizer.json BPE `model` dict, in place, in target order.

    Args:
        model: the "model" object of tokenizer.json (type BPE); vocab and merges are extended.
        targets: (byte-level token, origin) pairs, e.g. required characters then the tokens of a
            BPE learned on the target text with the same byte alphabet, in its merge order.
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

    for target, origin in targets:
        if len(added) >= n_new:
            break
        if target in vocab or not qualifies(target):
            continue
        pieces = bpe(target, ranks)
        # Join the current pieces left to right; every step is one appended merge.
        steps, current = [], pieces[0]
        for piece in pieces[1:]:
            steps.append((current, piece))
            current += piece
        if len(added) + sum(left + right not in vocab for left, right in steps) > n_new:
            continue  # needs more room than is left; a later target may fit
        for left, right in steps:
            joined = left + right
            if joined not in vocab:
                vocab[joined] = next_id
                added.append(NewToken(next_id, joined, bpe(joined, base_ranks), origin if joined == target else "intermediate"))
                next_id += 1
            if (left, right) not in ranks:
                ranks[(left, right)] = len(merges)
                merges.append((left, right))
    model["merges"] = [list(m) for m in merges]
    return added


def learn(spec: dict, texts: list[str], vocab_size: int, min_frequency: int, max_piece_chars: int) -> list[str]:
    """Tokens of a byte-level BPE trained with the base's normalizer and pre-tokenizer, in merge order."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    base = Tokenizer.from_str(json.dumps(spec))
    learner = Tokenizer(models.BPE())
    learner.normalizer = base.normalizer
    learner.pre_tokenizer = base.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=3 * max_piece_chars + 1,  # byte symbols: 3 per Han character, plus a leading space
        show_progress=True,
    )
    learner.train_from_iterator(texts, trainer=trainer, length=len(texts))
    merges = json.loads(learner.to_str())["model"]["merges"]
    return ["".join(m.split(" ", 1)) if isinstance(m, str) else "".join(m) for m in merges]


def printable(token: str) -> str:
    """A token's text for people: raw bytes decoded, partial UTF-8 shown as \\xNN, tabs/newlines escaped."""
    text = symbols_to_bytes(token).decode("utf-8", errors="backslashreplace")
    return text.replace("\t", "\\t").replace("\n", "\\n")
