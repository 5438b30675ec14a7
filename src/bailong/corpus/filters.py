"""Document filters: each returns True to keep or (False, reason) to drop, and nothing else."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from bailong.zh import han_ratio

Verdict = bool | tuple[bool, str]

# C0/C1 control characters other than tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def normalize(text: str) -> str:
    """NFC (not NFKC: full-width CJK punctuation stays), no control characters, unix newlines, no
    trailing spaces.

    >>> normalize("台\\u0301灣\\r\\n\\x07ok  ")
    '台́灣\\nok'
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def min_length(text: str, min_chars: int) -> Verdict:
    return True if len(text) >= min_chars else (False, "too_short")


def min_han(text: str, min_ratio: float) -> Verdict:
    return True if min_ratio <= 0 or han_ratio(text) >= min_ratio else (False, "low_han_ratio")


class ExactDedup:
    """Drops a document whose normalized text was seen before (sha1 of the text)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def __call__(self, text: str) -> Verdict:
        key = hashlib.sha1(text.encode("utf-8")).digest()
        if key in self.seen:
            return False, "exact_duplicate"
        self.seen.add(key)
        return True
