"""Reading the vocab stage's new tokens and spelling them with the OLD vocabulary."""

from __future__ import annotations

import csv
from pathlib import Path

from bailong.config import BailongError
from bailong.embed.methods import Decomposer, NewRow
from bailong.vocab.bytelevel import bytes_to_unicode, symbols_to_bytes


def token_bytes(token: str, kind: str) -> bytes:
    """UTF-8 bytes of a stored token: byte-level symbols, or a SentencePiece piece ('▁' = space)."""
    if kind == "bytelevel":
        return symbols_to_bytes(token)
    return token.replace("▁", " ").encode("utf-8")


def read_new_tokens(tsv: Path, kind: str) -> list[NewRow]:
    """Rows of the vocab stage's new_tokens.tsv (columns id, token, ..., old_ids, ...)."""
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"id", "token", "old_ids"} - set(reader.fieldnames or [])
        if missing:
            raise BailongError(f"{tsv} lacks column(s) {', '.join(sorted(missing))}")
        rows = []
        for lineno, r in enumerate(reader, 2):
            try:
                raw = token_bytes(r["token"], kind)
            except KeyError:
                raw = b""  # not spelled in this tokenizer's alphabet: counted as a fallback later
            try:
                rows.append(NewRow(int(r["id"]), tuple(int(x) for x in r["old_ids"].split()), raw))
            except ValueError:
                raise BailongError(f"{tsv}:{lineno}: id/old_ids are not integers") from None
        return rows


def decomposer(old_vocab: dict[str, int], kind: str) -> Decomposer:
    """Ids of the old single-byte tokens and of old tokens that are exactly one character."""
    if kind == "bytelevel":
        table = bytes_to_unicode()
        byte_ids = {b: old_vocab[table[b]] for b in range(256) if table[b] in old_vocab}
        chars = {}
        for token, i in old_vocab.items():
            try:
                text = symbols_to_bytes(token).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                continue
            if len(text) == 1:
                chars[text] = i
    else:
        byte_ids = {b: old_vocab[f"<0x{b:02X}>"] for b in range(256) if f"<0x{b:02X}>" in old_vocab}
        chars = {token.replace("▁", " "): i for token, i in old_vocab.items() if len(token) == 1}
    return Decomposer(byte_ids, chars)
