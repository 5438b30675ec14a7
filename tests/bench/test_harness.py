"""The lm-eval backend: task folders over our parsed questions, prompts and scores equal to the built-in scorer's."""

import json

import pytest
import torch
import yaml

from bailong.bench.harness import evaluate, write_tasks
from bailong.bench.multiple_choice import accuracy, letter_scores, prompt, read_choices_file, read_tmmlu
from bailong.config import BailongError
from bailong.models import load_model, load_tokenizer


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """Three subjects of eight questions with answers spread over A-D, read by our JSONL parser."""
    rows = [{"question": f"第{i}題：臺灣哪一個{('城市', '河流', '節日')[i % 3]}最有名？",
             "choices": [f"選項{i}{c}" for c in "甲乙丙丁"], "answer": "ABCD"[i * 7 % 4], "subject": ("歷史", "地理", "公民")[i % 3]}
            for i in range(24)]
    path = tmp_path_factory.mktemp("varied") / "questions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return read_choices_file(path)[0]


@pytest.fixture(scope="module")
def spiky(tiny_embedded):
    """tiny_embedded with larger random weights, so that its pick among A-D changes from question to question
    (the fixture's own weights prefer one letter almost everywhere, which would hide a wrong context)."""
    model, tok = load_model(tiny_embedded), load_tokenizer(tiny_embedded)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3)
    return model, tok


def load_tasks(task_dir, names):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(task_dir), include_defaults=False).load(names)["tasks"]


def test_folder_holds_data_template_task_and_group_yaml(tiny_tmmlu, tmp_path):
    subjects, _ = read_tmmlu(tiny_tmmlu)
    folder, names = write_tasks(subjects, tmp_path / "tasks", shots=1)
    assert (folder, names) == (tmp_path / "tasks", ["tmmlu_000"])
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "_tmmlu_template_yaml", "data", "data/tmmlu_000.fewshot.jsonl", "data/tmmlu_000.test.jsonl", "tmmlu.yaml", "tmmlu_000.yaml"]
    assert yaml.safe_load((folder / "tmmlu_000.yaml").read_text(encoding="utf-8")) == {
        "include": "_tmmlu_template_yaml", "task": "tmmlu_000", "task_alias": "地理",
        "dataset_kwargs": {"data_files": {"test": f"{folder}/data/tmmlu_000.test.jsonl", "fewshot": f"{folder}/data/tmmlu_000.fewshot.jsonl"},
                           "cache_dir": f"{folder}/cache"},
        "fewshot_split": "fewshot", "metadata": {"version": 1, "subject": "地理"}}
    template = yaml.safe_load((folder / "_tmmlu_template_yaml").read_text(encoding="utf-8"))
    assert {k: template[k] for k in ("doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter", "fewshot_delimiter",
                                     "num_fewshot", "fewshot_config")} == {
        "doc_to_text": "prompt", "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer", "target_delimiter": "",
        "fewshot_delimiter": "\n\n", "num_fewshot": 1, "fewshot_config": {"sampler": "first_n"}}
    assert yaml.safe_load((folder / "tmmlu.yaml").read_text(encoding="utf-8"))["task"] == ["tmmlu_000"]
    scored = [json.loads(line) for line in (folder / "data" / "tmmlu_000.test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert scored == [{"prompt": "2. 臺北101位於\n(A) 信義區\n(B) 中山區\n(C) 大安區\n(D) 士林區。\n答案：", "question": "2. 臺北101位於",
                       "choices": ["信義區", "中山區", "大安區", "士林區。"], "answer": 0, "where": f"{tiny_tmmlu}/subjects/地理/data.csv:3"}]


@pytest.mark.parametrize("shots", [0, 1, 3])  # 3: the demonstrations' order matters too (first_n, not sampled)
def test_harness_prompts_are_the_builtin_prompts(varied, tmp_path, shots):
    folder, names = write_tasks(varied, tmp_path / "tasks", shots=shots, per_subject=3)
    assert names == ["tmmlu_000", "tmmlu_001", "tmmlu_002"]
    tasks = load_tasks(folder, names)
    for name, (subject, items) in zip(names, varied.items()):
        task = tasks[name]
        assert task.config.task_alias == subject
        docs = list(task.test_docs())
        assert [d["where"] for d in docs] == [it["where"] for it in items[shots:][:3]]
        for doc, item in zip(docs, items[shots:]):
            assert task.fewshot_context(doc, num_fewshot=shots) == prompt(item, items[:shots])
        task.build_all_requests()  # the (context, continuation) pairs lm-eval will score, four per question
        assert [i.arguments for i in task.instances[:4]] == [(prompt(items[shots], items[:shots]), letter) for letter in "ABCD"]


@pytest.mark.parametrize("shots", [0, 1])
def test_harness_log_likelihoods_match_the_builtin_letter_logits(varied, spiky, tmp_path, shots):
    """Token for token the same input: lm-eval's log-probability differences between the letters are our
    logit differences (log-softmax only shifts all four by the same amount)."""
    from lm_eval.models.huggingface import HFLM

    model, tok = spiky
    folder, names = write_tasks(varied, tmp_path / "tasks", shots=shots)
    tasks = load_tasks(folder, names)
    requests, prompts = [], []
    for name, items in zip(names, varied.values()):
        tasks[name].build_all_requests()
        requests += tasks[name].instances
        prompts += [tok(prompt(it, items[:shots]))["input_ids"] for it in items[shots:]]
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=4, max_length=2048)
    theirs = torch.tensor([ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]).view(-1, 4)
    ours = letter_scores(model, tok, prompts, batch_size=4)
    assert torch.allclose(theirs - theirs[:, :1], ours - ours[:, :1], atol=1e-4)
    assert len(set(ours.argmax(-1).tolist())) == 4  # every letter is picked somewhere: a wrong context would show


@pytest.mark.parametrize("shots", [0, 1])
def test_same_accuracy_as_the_builtin_scorer(varied, spiky, tmp_path, shots):
    model, tok = spiky
    builtin = accuracy(model, tok, varied, shots=shots, per_subject=6)
    harness = evaluate(model, tok, *write_tasks(varied, tmp_path / "tasks", shots, per_subject=6), shots=shots, batch_size=4)
    assert {k: harness[k] for k in builtin} == builtin
    assert (harness["questions"], harness["backend"]) == (18, "lm-eval 0.4.13")
    assert harness["acc_norm_per_subject"] == harness["per_subject"]  # one-letter answers: nothing to normalise
    assert len(set(builtin["per_subject"].values())) > 1  # not a constant picker scoring 1/4 everywhere
    written = json.loads((tmp_path / "lm_eval_results.json").read_text(encoding="utf-8"))
    assert written["n-shot"] == {"tmmlu_000": shots, "tmmlu_001": shots, "tmmlu_002": shots}


def test_bench_stage_with_the_lm_eval_backend(tiny_tmmlu, tiny_embedded, tmp_path):
    from bailong.bench import BenchConfig, run

    stats = run(BenchConfig(model=tiny_embedded, out_dir=tmp_path / "bench", question_ids=[], eval_chars=100, tmmlu=tiny_tmmlu,
                            tmmlu_backend="lm-eval", tmmlu_shots=1)).stats
    model, tok = load_model(tiny_embedded), load_tokenizer(tiny_embedded)
    builtin = accuracy(model, tok, read_tmmlu(tiny_tmmlu)[0], shots=1)
    assert {k: stats["tmmlu"][k] for k in builtin} == builtin
    assert (stats["tmmlu"]["questions"], stats["tmmlu"]["backend"], stats["tmmlu"]["skipped"]) == (1, "lm-eval 0.4.13", 1)
    assert (tmp_path / "bench" / "lm_eval_tasks" / "tmmlu_000.yaml").is_file()
    assert (tmp_path / "bench" / "lm_eval_results.json").is_file()


def test_config_rejects_an_unknown_backend(tmp_path):
    from bailong.bench import BenchConfig

    with pytest.raises(ValueError, match="tmmlu_backend"):
        BenchConfig(out_dir=tmp_path, tmmlu_backend="harness")


def test_bad_input_raises(varied, tmp_path):
    broken = {"地理": [{"question": "", "choices": dict(zip("ABCD", "甲乙丙丁")), "answer": "A", "where": "q.jsonl:7"}]}
    with pytest.raises(BailongError, match=r"^lm-eval tasks: 1 item\(s\) without a question, four choices A-D and an answer "
                                           r"letter, e.g. q.jsonl:7$"):
        write_tasks(broken, tmp_path / "tasks")
    with pytest.raises(BailongError, match=r"no question left to score \(per_subject/shots leave none\)"):
        write_tasks(varied, tmp_path / "tasks", shots=8)
    with pytest.raises(BailongError, match="must be lowercase letters, digits and _"):
        write_tasks(varied, tmp_path / "tasks", name="TMMLU plus")
    assert not (tmp_path / "tasks").exists()  # nothing half-written


def test_harness_tasks_command(tiny_tmmlu, tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bailong", "bench", "harness-tasks", str(tiny_tmmlu), "--out", str(tmp_path / "t"),
                          "--shots", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"tasks: {tmp_path / 't'} (1 subjects, group 'tmmlu'; 1 questions skipped)\n"
    assert (tmp_path / "t" / "data" / "tmmlu_000.fewshot.jsonl").is_file()


def test_shared_tmmlu_as_tasks(shared_data, tmp_path):
    subjects, _ = read_tmmlu(shared_data / "eval" / "tmmlu")
    folder, names = write_tasks(subjects, tmp_path / "tasks", shots=5, per_subject=20)
    scored = sum(len((folder / "data" / f"{n}.test.jsonl").read_text(encoding="utf-8").splitlines()) for n in names)
    assert (len(names), names[-1], scored) == (49, "tmmlu_048", 920)


def test_long_prompts_are_cut_as_the_builtin_scorer_cuts_them(varied, spiky, tmp_path, caplog):
    model, tok = spiky
    builtin = accuracy(model, tok, varied, shots=1, per_subject=2, max_length=24)
    with caplog.at_level("WARNING", logger="bailong.bench.harness"):
        harness = evaluate(model, tok, *write_tasks(varied, tmp_path / "tasks", 1, per_subject=2), shots=1, batch_size=4, max_length=24)
    assert {k: harness[k] for k in builtin} == builtin
    assert [r.getMessage() for r in caplog.records if r.name == "bailong.bench.harness"] == [
        "lm-eval: 6 prompts cut from the left to max_length tokens, as the built-in scorer cuts them"]
