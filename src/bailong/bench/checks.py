"""Deterministic gates applied before any judge: they score 0 without a judge call.

Bailong-bench's rules: any Simplified Chinese scores 0; an answer not in the user's language
scores 0 unless the task is a translation (or the user asked for another language).
"""

from __future__ import annotations

import re

from bailong.zh import detect_language, han_count, latin_count, simplified_chars

TRANSLATION_CATEGORIES = ("translation-en-zh", "translation-zh-en")


def gate(answer: str, language: str, category: str, check_language: bool = True) -> str | None:
    """None if the answer passes, else the reason it scores 0. Only an answer in the *other* language
    fails the language rule: a bare number is not a wrong language; an empty answer, or one with no
    word and no number, fails.

    >>> gate("这是答案", "zh-TW", "writing")
    'simplified: 这'
    >>> gate("This is the answer.", "zh-TW", "writing")
    'language: en, expected zh'
    >>> gate("42", "zh-TW", "arithmetic") is None
    True
    """
    found = simplified_chars(answer)
    if found:
        return "simplified: " + "".join(dict.fromkeys(found))[:10]
    if not answer.strip():
        return "empty"
    expected = "zh" if language.startswith("zh") else "en"
    got = detect_language(answer)
    if got == "unknown" and not any(c.isdigit() for c in answer):
        return f"language: none, expected {expected}"  # no word, no number: nothing to judge
    if check_language and category not in TRANSLATION_CATEGORIES and got not in (expected, "unknown"):
        return f"language: {got}, expected {expected}"
    return None


def mixed_language(turns: list[str]) -> bool:
    """Whether a question carries substantial text in both languages (e.g. "修改以下英語段落：She didn't
    ..."): the fitting answer language is then the judge's call, not a deterministic gate's.

    >>> mixed_language(["修改以下英語段落，糾正任何語法錯誤：She didn't remembre where is her purse, so I thinks its in the car."])
    True
    >>> mixed_language(["請介紹臺北的 MRT 系統。"])
    False
    """
    return any(han_count(t) >= 8 and latin_count(t) >= 40 for t in turns)


_QUOTED = re.compile(r"「[^」]*」|『[^』]*』|“[^”]*”|\"[^\"\n]*\"")


def question_language(turns: list[str]) -> str:
    """For question files without a ``language`` (MT-Bench): the language of the first turn's own words,
    quoted material (「...」, "...") and code left out.

    >>> question_language(["Translate into English:「明天早上八點在公司大門口集合，請大家準時。」"])
    'en'
    >>> question_language(["假設 f(x) = 4x^3 - 9x - 14，求出 f(2) 的值。"])
    'zh-TW'
    """
    own = detect_language(_QUOTED.sub(" ", turns[0]))
    if own == "unknown":
        own = detect_language(turns[0])
    return "zh-TW" if own == "zh" else "en"
