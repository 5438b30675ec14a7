import pytest

from bailong.bench.multiple_choice import accuracy, prompt, read_tmmlu
from bailong.models import load_model, load_tokenizer


def test_reading_splits_inline_choices_and_skips_open_questions(tiny_tmmlu):
    subjects, problems = read_tmmlu(tiny_tmmlu)
    first = subjects["地理"][0]
    assert first["question"] == "1. 臺灣最高的山是" and first["answer"] == "B"
    assert first["choices"] == {"A": "雪山", "B": "玉山", "C": "合歡山", "D": "阿里山。"}
    assert problems == [f"{tiny_tmmlu}/subjects/地理/data.csv:4: not a question with choices (A)-(D) and an answer letter"]
    assert prompt(subjects["地理"][1], subjects["地理"][:1]) == (
        "1. 臺灣最高的山是\n(A) 雪山\n(B) 玉山\n(C) 合歡山\n(D) 阿里山。\n答案：B\n\n"
        "2. 臺北101位於\n(A) 信義區\n(B) 中山區\n(C) 大安區\n(D) 士林區。\n答案：")


def test_accuracy_counts_the_letter_with_the_highest_log_probability(tiny_tmmlu, tiny_embedded, monkeypatch):
    model, tok = load_model(tiny_embedded), load_tokenizer(tiny_embedded)
    b = tok("B", add_special_tokens=False)["input_ids"][0]
    real = model.forward

    def always_b(*args, **kwargs):  # a model that always prefers the letter B
        out = real(*args, **kwargs)
        out.logits[..., b] += 1e4
        return out

    monkeypatch.setattr(model, "forward", always_b)
    result = accuracy(model, tok, read_tmmlu(tiny_tmmlu)[0])
    assert (result["accuracy_micro"], result["questions"], result["per_subject"]) == (0.5, 2, {"地理": 0.5})
    assert accuracy(model, tok, read_tmmlu(tiny_tmmlu)[0], shots=1)["accuracy_micro"] == 0.0  # only question 2 (A) is scored


def test_shared_tmmlu_reads_50_subjects(shared_data):
    subjects, problems = read_tmmlu(shared_data / "eval" / "tmmlu")
    assert (len(subjects), sum(map(len, subjects.values())), len(problems)) == (50, 3253, 60)


def test_batched_left_padded_scores_equal_one_prompt_at_a_time(tiny_tmmlu, tiny_embedded):
    import torch

    from bailong.bench.multiple_choice import letter_scores

    model, tok = load_model(tiny_embedded), load_tokenizer(tiny_embedded)
    items = read_tmmlu(tiny_tmmlu)[0]["地理"]
    prompts = [tok(prompt(it, items[:k]))["input_ids"] for it in items for k in (0, 1)]  # four lengths
    assert len(set(map(len, prompts))) == 4
    together = letter_scores(model, tok, prompts, batch_size=4)
    alone = torch.cat([letter_scores(model, tok, [p], batch_size=1) for p in prompts])
    assert torch.allclose(together, alone, atol=1e-4)


def test_json_choice_files_in_several_shapes(tmp_path):
    import json

    from bailong.bench.multiple_choice import read_choices_file

    rows = [{"question": "臺灣最高的山？", "choices": ["玉山", "雪山", "合歡山", "阿里山"], "answer": "A", "subject": "地理"},
            {"question": "臺北101 在哪個城市？", "A": "臺北", "B": "新北", "C": "桃園", "D": "基隆", "answer": 0},
            {"question": "二選一？", "choices": ["是", "否"], "answer": "A"}]
    path = tmp_path / "ttqa.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    subjects, problems = read_choices_file(path)
    assert {k: [i["answer"] for i in v] for k, v in subjects.items()} == {"地理": ["A"], "ttqa": ["A"]}
    assert subjects["ttqa"][0]["choices"] == {"A": "臺北", "B": "新北", "C": "桃園", "D": "基隆"}
    assert problems == [f"{path}:3: not a question with four choices and an answer letter or index"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(Exception, match="bad.jsonl: not JSON/JSONL"):
        read_choices_file(bad)
