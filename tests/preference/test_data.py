import json

import pytest

from bailong.preference.data import demo_pairs, load_pairs, to_pair
from bailong.zh import simplified_chars

PROMPT = [{"role": "user", "content": "捷運上可以喝水嗎？"}]
GOOD = {"role": "assistant", "content": "不行，付費區內禁止飲食。"}
BAD = {"role": "assistant", "content": "可以。"}


def test_explicit_and_implicit_prompts_give_the_same_pair():
    explicit = to_pair({"prompt": "捷運上可以喝水嗎？", "chosen": GOOD["content"], "rejected": BAD["content"]})
    implicit = to_pair({"chosen": [*PROMPT, GOOD], "rejected": [*PROMPT, BAD]})
    assert explicit == implicit == ({"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}, None)


@pytest.mark.parametrize("row,reason", [
    ({"prompt": "問題", "chosen": "好"}, "no 'rejected' field"),
    ({"chosen": "好", "rejected": "壞"}, "no prompt, and chosen/rejected are not conversations"),
    ({"chosen": [*PROMPT, GOOD], "rejected": [{"role": "user", "content": "別的問題"}, BAD]},
     "chosen and rejected conversations differ before their last message"),
    ({"prompt": "問題", "chosen": "一樣", "rejected": "一樣"}, "chosen and rejected are the same answer"),
    ({"prompt": "問題", "chosen": " ", "rejected": "壞"}, "chosen: empty content in message 2"),
    ({"prompt": [*PROMPT, GOOD], "chosen": "好", "rejected": "壞"}, "chosen: two assistant turns in a row"),
    ([1, 2], "not a JSON object"),
])
def test_bad_pairs_say_why(row, reason):
    assert to_pair(row) == (None, reason)


def test_bad_lines_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join([json.dumps({"prompt": "問題", "chosen": "好", "rejected": "壞"}, ensure_ascii=False),
                               "not json", json.dumps({"prompt": "問題", "chosen": "好"}, ensure_ascii=False)]) + "\n",
                    encoding="utf-8")
    pairs, problems = load_pairs(str(path))
    assert [where for where, _ in pairs] == [f"{path}:1"]
    assert problems == [f"{path}:2: malformed JSON (Expecting value)", f"{path}:3: no 'rejected' field"]


def test_demo_pairs_reject_the_simplified_version_of_each_answer():
    pairs, problems = demo_pairs()
    assert len(pairs) >= 100 and len(problems) < 10
    for _, pair in pairs:
        assert not simplified_chars(pair["chosen"][0]["content"])
        assert simplified_chars(pair["rejected"][0]["content"])
