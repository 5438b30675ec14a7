"""Deterministic gates applied before any judge: they score 0 without a judge call.

Bailong-bench's rules: any Simplified Chinese scores 0; an answer not in the user's language
scores 0 unless the task is a translation (or the user asked for another language).
"""

from __future__ import annotations

from bailong.zh import detect_language, simplified_chars

TRANSLATION_CATEGORIES = ("translation-en-zh", "translation-zh-en")


def gate(answer: str, language: str, category: str) -> str | None:
    """None if the answer passes, else the reason it scores 0.

    >>> gate("这是答案", "zh-TW", "writing")
    'simplified: 这'
    >>> gate("This is the answer.", "zh-TW", "writing")
    'language: en, expected zh'
    """
    found = simplified_chars(answer)
    if found:
        return "simplified: " + "".join(dict.fromkeys(found))[:10]
    if category not in TRANSLATION_CATEGORIES:
        expected = "zh" if language.startswith("zh") else "en"
        got = detect_language(answer)
        if got != expected:
            return f"language: {got}, expected {expected}"
    return None
