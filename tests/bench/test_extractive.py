"""DRCD-style extractive QA and EN<->zh-TW translation scoring."""

from __future__ import annotations

import json

import pytest

from bailong.bench import extractive, translation
from bailong.config import BailongError


def test_em_f1_over_characters_after_normalization():
    assert extractive.em_f1("「臺北市」。", ["臺北市"]) == (1.0, 1.0)
    assert extractive.em_f1("臺北", ["高雄", "臺北市"]) == (0.0, 0.8)  # the best gold counts
    assert extractive.em_f1("", ["臺北"]) == (0.0, 0.0)
    assert extractive.em_f1("1786 年", ["1786年"]) == (1.0, 1.0)


def test_chat_jsonl_items_use_gold_history(tmp_path):
    path = tmp_path / "qa.jsonl"
    chat = {"messages": [{"role": "system", "content": "簡答。"}, {"role": "user", "content": "文章……問題：誰？"},
                         {"role": "assistant", "content": "陸特"}, {"role": "user", "content": "在哪裡？"},
                         {"role": "assistant", "content": "歐洲"}]}
    path.write_text(json.dumps(chat, ensure_ascii=False) + "\nnot json\n", encoding="utf-8")
    items, problems = extractive.read_qa(path)
    assert [i["golds"] for i in items] == [["陸特"], ["歐洲"]]
    assert items[1]["messages"][-2:] == [{"role": "assistant", "content": "陸特"}, {"role": "user", "content": "在哪裡？"}]
    assert problems == ["qa.jsonl:2: not a JSON object with messages"]


def test_drcd_json_items(tmp_path):
    path = tmp_path / "drcd.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "玉山位於臺灣。", "qas": [
        {"id": "q1", "question": "玉山在哪？", "answers": [{"text": "臺灣", "answer_start": 3}]},
        {"id": "q2", "question": "多高？", "answers": []}]}]}]}, ensure_ascii=False), encoding="utf-8")
    items, problems = extractive.read_qa(path)
    assert [(i["id"], i["golds"]) for i in items] == [("q1", ["臺灣"])]
    assert "玉山位於臺灣。" in items[0]["messages"][0]["content"] and problems == ["q2: no answer text"]


def test_shared_drcd_chats_read_cleanly(shared_data):
    items, problems = extractive.read_qa(shared_data / "sft" / "drcd_dev_multiturn_qa.jsonl")
    assert (len(items), problems) == (3524, [])


class _Tok:
    chat_template = "x"


def test_evaluate_scores_what_the_model_says(monkeypatch):
    items = [{"id": "a", "messages": [{"role": "user", "content": "問"}], "golds": ["臺北市"]},
             {"id": "b", "messages": [{"role": "user", "content": "問"}], "golds": ["歐洲"]}]
    monkeypatch.setattr("bailong.bench.generation.generate_batch", lambda model, tok, convs, gen: ["臺北", "歐洲。"][: len(convs)])
    result = extractive.evaluate(None, _Tok(), items, batch_size=2)
    assert (result["questions"], result["exact_match"], result["f1"]) == (2, 50.0, 90.0)


def test_translation_scores_and_checks(tmp_path, monkeypatch):
    en, zh = tmp_path / "en.txt", tmp_path / "zh.txt"
    en.write_text("The law is enacted.\nThe court decides.\n", encoding="utf-8")
    zh.write_text("特制定本法。\n由法院裁定。\n", encoding="utf-8")
    pairs = translation.read_pairs(en, zh, None)
    refs = {"特制定本法。": "The law is enacted.", "由法院裁定。": "The court decides.",
            "The law is enacted.": "特制定本法。\n（說明）", "The court decides.": "由法院裁定。"}
    monkeypatch.setattr("bailong.bench.generation.generate_batch",
                        lambda model, tok, convs, gen: [refs[c[0]["content"].split("\n", 1)[1]] for c in convs])
    result = translation.evaluate(None, _Tok(), pairs, batch_size=4)
    assert result["en-zh"]["bleu"] == 100.0 and result["en-zh"]["chrf"] == 100.0  # the note after the first line is cut
    assert result["zh-en"]["bleu"] == 100.0 and result["en-zh"]["outputs_with_simplified"] == 0
    zh.write_text("特制定本法。\n", encoding="utf-8")
    with pytest.raises(BailongError, match="not line-aligned: .*en.txt has 2 lines, .*zh.txt 1"):
        translation.read_pairs(en, zh, None)


def test_bench_stage_runs_drcd_and_translation(tiny_chat, shared_data, tmp_path):
    from bailong.bench import BenchConfig, run

    model = tiny_chat
    parallel = shared_data / "parallel"
    stats = run(BenchConfig(model=model, out_dir=tmp_path / "bench", question_ids=[], eval_chars=100, batch_size=4,
                            drcd=shared_data / "sft" / "drcd_dev_multiturn_qa.jsonl", drcd_limit=4,
                            translation=[parallel / "tw_laws_sample3000.en.txt", parallel / "tw_laws_sample3000.zh_TW.txt"],
                            translation_limit=3)).stats
    assert stats["drcd"]["questions"] == 4 and 0 <= stats["drcd"]["f1"] <= 100
    assert stats["translation"]["pairs"] == 3 and set(stats["translation"]) == {"pairs", "en-zh", "zh-en"}
