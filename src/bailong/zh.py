"""Script facts about Chinese text, shared by the corpus filters and the bench checks."""

from __future__ import annotations

import functools
import re

# CJK Unified Ideographs, Extension A, compatibility ideographs, and Extensions B-I (astral).
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]+`", re.DOTALL)


def _codes(text: str):
    import numpy as np

    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def han_count(text: str) -> int:
    """Han ideographs in text (the ranges of _HAN), counted on code points: no list of matches is built.

    >>> han_count("臺灣 Taiwan 𠀋")
    3
    """
    if len(text) < 64:
        return len(_HAN.findall(text))
    cp = _codes(text)
    return int((((cp >= 0x3400) & (cp <= 0x4DBF)) | ((cp >= 0x4E00) & (cp <= 0x9FFF)) | ((cp >= 0xF900) & (cp <= 0xFAFF))
                | ((cp >= 0x20000) & (cp <= 0x3134F))).sum())


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
    uses, cannot encode it (a table of such characters is built once, then looked up with numpy). The Big5 test keeps characters shared by both scripts (台, 才, 里, 干,
    which s2t would also change) from being flagged. CJK compatibility ideographs (U+F900-FAFF, which
    NFC folds to unified ones) are not Simplified and are skipped.

    >>> simplified_chars("这是台灣的軟體，发展")
    ['这', '发']
    """
    if not han_count(text):
        return []
    import numpy as np

    return [text[i] for i in np.flatnonzero(_simplified_mask()[_codes(text)])]


@functools.cache
def _simplified_mask():
    """A boolean per code point: True for every CJK character s2t changes that Big5 cannot encode (built once, ~0.2 s)."""
    import numpy as np

    s2t = _converter("s2t")
    ranges = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x30000, 0x3134F)]
    chars = "".join(chr(c) for lo, hi in ranges for c in range(lo, hi + 1))
    converted = s2t.convert("\n".join(chars)).split("\n")
    mask = np.zeros(0x110000, dtype=bool)
    mask[[ord(a) for a, b in zip(chars, converted) if a != b and not _in_big5(a)]] = True
    return mask


def to_traditional(text: str, profile: str = "s2twp") -> str:
    """Convert with an OpenCC profile (s2twp: Taiwan phrases, s2tw: Taiwan characters)."""
    return _converter(profile).convert(text)


def to_simplified(text: str) -> str:
    """zh-TW text as mainland Simplified Chinese (OpenCC tw2sp: characters and phrases)."""
    return _converter("tw2sp").convert(text)


def latin_count(text: str) -> int:
    """Latin letters in text (words of A-Z/a-z).

    >>> latin_count("臺北 MRT 101")
    3
    """
    return sum(len(w) for w in _LATIN_WORD.findall(text))


def detect_language(text: str) -> str:
    """'zh', 'en' or 'unknown' by Han characters vs Latin words: enough to catch a wrong-language answer.
    Code (fenced blocks and `inline` spans) is not prose and is left out.

    >>> detect_language("用遞迴：```python def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)```")
    'zh'
    >>> detect_language("42")
    'unknown'
    """
    text = _CODE.sub(" ", text)
    han = han_count(text)
    latin = latin_count(text)
    if han == 0 and latin == 0:
        return "unknown"
    # One Han character carries roughly as much as 3 Latin letters.
    return "zh" if han * 3 >= latin else "en"
