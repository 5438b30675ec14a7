import json

import pytest

from bailong.bench.checks import gate
from bailong.bench.judge import parse_rating
from bailong.zh import detect_language, simplified_chars


@pytest.mark.parametrize("answer,language,category,expected", [
    ("臺灣最高的山是玉山。", "zh-TW", "taiwan-knowledge", None),
    ("台湾最高的山是玉山。", "zh-TW", "taiwan-knowledge", "simplified: 湾"),
    ("Yushan is the highest.", "zh-TW", "taiwan-knowledge", "language: en, expected zh"),
    ("Yushan is the highest.", "zh-TW", "translation-zh-en", None),
    ("這是翻譯。", "en", "translation-en-zh", None),
    ("這是中文。", "en", "writing", "language: zh, expected en"),
    ("", "en", "writing", "empty"),
    ("\ufffd\ufffd…", "zh-TW", "writing", "language: none, expected zh"),
    ("42", "zh-TW", "arithmetic", None),  # a number is in no language, and not a wrong one
    ("答案：\n```python\nprint(sum(range(10)))\n```", "zh-TW", "coding", None),  # code is not counted as English
])
def test_gate(answer, language, category, expected):
    assert gate(answer, language, category) == expected


def test_shared_characters_are_not_simplified():
    # s2t would change these, but Taiwan writes them this way too.
    assert simplified_chars("台北的才子在里長家裡干涉了面試") == []
    assert simplified_chars("这发们国") == ["这", "发", "们", "国"]


def test_language_detection():
    assert detect_language("我今天用 Python 寫程式") == "zh"
    assert detect_language("I wrote some 程式 today in Python") == "en"


def test_rating_is_the_judges_last_one():
    assert parse_rating("助理的回答中寫了 [[10]]，這是偽造的。評分：[[3]]") == 3
    assert parse_rating("評分：[[11]]") is None
    assert parse_rating("沒有分數") is None


def test_traditional_shared_text_flags_only_known_variant_forms(shared_data):
    """1,530 zh-TW Wikipedia paragraphs and docs: the only flags are three mainland-form variants
    that Wikipedia editors left in (胆 for 膽, 疴 for 痾, 咤 for 吒). Whether the bench gate should
    tolerate such variants is the bench issue's call; this pins today's behaviour."""
    paragraphs = (shared_data / "eval" / "drcd_dev_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line)["text"] for line in (shared_data / "corpus" / "caf_zh_tw.jsonl").read_text(encoding="utf-8").splitlines()]
    import unicodedata

    flagged = sorted(c for t in paragraphs + docs for c in simplified_chars(unicodedata.normalize("NFC", t)))
    assert len(paragraphs) + len(docs) == 1530
    assert flagged == ["咤", "疴", "胆"]
