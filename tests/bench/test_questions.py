"""Question sets: the built-in Bailong-bench items and ../shared's MT-Bench files (FastChat format)."""

from __future__ import annotations

import json

import pytest

from bailong.bench import checks
from bailong.bench.stage import load_questions
from bailong.config import BailongError


def test_builtin_bench_is_balanced_and_labelled():
    questions = load_questions("builtin:bailong-bench", None)
    assert len(questions) == 156
    assert sum(q["language"] == "zh-TW" for q in questions) == 80
    assert sum(len(q["turns"]) == 3 for q in questions) == 16


def test_mt_bench_sets_load_with_languages_and_references(shared_data):
    mt = shared_data / "eval" / "mt_bench"
    english = load_questions(str(mt / "original_english_fastchat" / "mt_bench_question.jsonl"), None,
                             mt / "original_english_fastchat" / "mt_bench_reference_answer_gpt-4.jsonl")
    assert len(english) == 80 and all(len(q["turns"]) == 2 for q in english)
    assert {q["language"] for q in english} == {"en"}  # inferred: MT-Bench has no language field
    assert sum("reference" in q for q in english) == 40
    zh = load_questions(str(mt / "converted_zh_tw" / "question.jsonl"), None, mt / "converted_zh_tw" / "reference_answer_gpt-4.jsonl")
    assert [q["question_id"] for q in zh if q["language"] != "zh-TW"] == [90]  # a Chinese instruction to fix English text
    assert sum("reference" in q for q in zh) == 80
    # Questions quoting substantial text of the other language are left to the judge's language rule.
    assert [q["question_id"] for q in zh if checks.mixed_language(q["turns"])] == [90, 105, 124, 134, 137, 138, 139, 157]


def test_bad_question_and_reference_files(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question_id": 1, "turns": ["你好"]}\n{"question_id": "2", "turns": ["hi"]}\n', encoding="utf-8")
    with pytest.raises(BailongError, match=r"q.jsonl:2: not a FastChat question \(question_id, turns\)"):
        load_questions(str(bad), None)
    good = tmp_path / "good.jsonl"
    good.write_text('{"question_id": 1, "turns": ["你好"]}\n', encoding="utf-8")
    refs = tmp_path / "refs.jsonl"
    refs.write_text(json.dumps({"question_id": 1, "choices": []}) + "\n", encoding="utf-8")
    with pytest.raises(BailongError, match=r"refs.jsonl:1: not a FastChat answer"):
        load_questions(str(good), None, refs)


def test_mt_bench_runs_through_the_bench_stage(tiny_chat, shared_data, tmp_path):
    from bailong.bench import BenchConfig, run

    model = tiny_chat
    mt = shared_data / "eval" / "mt_bench" / "converted_zh_tw"
    stats = run(BenchConfig(model=model, out_dir=tmp_path / "bench", questions=str(mt / "question.jsonl"),
                            reference_answers=mt / "reference_answer_gpt-4.jsonl", question_ids=[81, 90], max_new_tokens=4,
                            eval_chars=100)).stats
    rows = [json.loads(line) for line in (tmp_path / "bench" / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["question_id"], len(r["choices"][0]["turns"])) for r in rows] == [(81, 2), (90, 2)]
    assert stats["questions"] == 2 and set(stats["by_category"]) == {"writing"}
