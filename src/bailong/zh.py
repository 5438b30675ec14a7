"""Script facts about Chinese text, shared by the corpus filters and the bench checks."""

from __future__ import annotations

import functools
import re

# CJK Unified Ideographs, Extension A, compatibility ideographs, and Extensions B-I (astral).
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def han_count(text: str) -> int:
    return len(_HAN.findall(text))


def han_ratio(text: str) -> float:
    """Share of non-space characters that are Han ideographs."""
    visible = sum(1 for c in text if not c.isspace())
    return han_count(text) / visible if visible else 0.0


@functools.cache
def _converter(profile: str):
    import opencc

    return opencc.OpenCC(profile)


def _in_big5(char: str) -> bool:
    try:
        char.encode("big5")
        return True
    except UnicodeEncodeError:
        return False


def simplified_chars(text: str) -> list[str]:
    """Characters of `text` that are Simplified (or mainland variant) forms, in order of appearance.

    A character counts when OpenCC's s2t changes it and Big5, the Traditional character set Taiwan
    uses, cannot encode it. The Big5 test keeps characters shared by both scripts (台, 才, 里, 干,
    which s2t would also change) from being flagged. CJK compatibility ideographs (U+F900-FAFF, which
    NFC folds to unified ones) are not Simplified and are skipped.

    >>> simplified_chars("这是台灣的軟體，发展")
    ['这', '发']
    """
    if not han_count(text):
        return []
    s2t = _converter("s2t")
    converted = s2t.convert(text)
    if len(converted) == len(text):
        pairs = zip(text, converted)
    else:  # a phrase rule changed the length: compare character by character instead
        pairs = ((c, s2t.convert(c)) for c in text)
    return [a for a, b in pairs if a != b and not "\uf900" <= a <= "\ufaff" and not _in_big5(a)]


def to_traditional(text: str, profile: str = "s2twp") -> str:
    """Convert with an OpenCC profile (s2twp: Taiwan phrases, s2tw: Taiwan characters)."""
    return _converter(profile).convert(text)


def detect_language(text: str) -> str:
    """'zh', 'en' or 'unknown' by Han characters vs Latin words: enough to catch a wrong-language answer."""
    han = han_count(text)
    latin = sum(len(w) for w in _LATIN_WORD.findall(text))
    if han == 0 and latin == 0:
        return "unknown"
    # One Han character carries roughly as much as 3 Latin letters.
    return "zh" if han * 3 >= latin else "en"
