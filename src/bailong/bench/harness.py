"""Multiple choice through EleutherAI's lm-evaluation-harness, over local files.

`write_tasks` turns what `multiple_choice.read_tmmlu` / `read_choices_file` parsed into an lm-eval task
folder: per subject a JSONL data file and a short task YAML (``include`` of one template, as the
harness's own tmmluplus tasks are laid out), plus a group YAML named after the folder's ``name``.
The folder is usable by hand::

    lm_eval --model hf --model_args pretrained=MODEL,max_length=2048 --include_path DIR --tasks tmmlu

`evaluate` runs it on an already-loaded model and returns what `multiple_choice.accuracy` returns, so
both backends are read the same way. The prompt is the built-in scorer's to the character: each
record carries its `prompt()` text, the target delimiter is empty and demonstrations are joined by a
blank line, so 'acc' is the built-in 'accuracy' (tests/bench/test_harness.py checks both).

Simplifications: k-shot demonstrations are each subject's first k questions, written to a separate
``fewshot`` split (``sampler: first_n``), so the folder is made for one k; its test split holds only
the scored questions (``per_subject`` applied), nothing is left to lm-eval's ``--limit``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import yaml

from bailong.bench.multiple_choice import LETTERS, prompt
from bailong.config import BailongError
from bailong.io import atomic_path, write_json

log = logging.getLogger(__name__)
VERSION = 1  # metadata.version of every task written; bump when the prompt or the data layout changes

# Shared by every subject's task YAML (through `include`); written as text to keep its comments.
TEMPLATE = """\
# Written by bailong (bench/harness.py): the built-in multiple-choice scorer's prompt, as an lm-eval task.
output_type: multiple_choice
dataset_path: json
test_split: test
doc_to_text: prompt  # a field of the data, not a Jinja template: bailong's prompt(item, []) text, ending in 答案：
doc_to_choice: [A, B, C, D]
doc_to_target: answer  # index into doc_to_choice
# context + continuation = "...答案：" + "B", and each demonstration ends in "B\\n\\n": bailong's layout exactly.
target_delimiter: ""
fewshot_delimiter: "\\n\\n"
num_fewshot: {shots}  # the data's test split leaves out the demonstrations: it is made for this k
fewshot_config:
  sampler: first_n  # the subject's first k questions, in order, as the built-in scorer
# The four answers are one byte each, so acc_norm (length-normalised) equals acc; kept as lm-eval tables have it.
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""


def write_tasks(subjects: dict[str, list[dict]], out_dir: Path, shots: int = 0, per_subject: int | None = None,
                name: str = "tmmlu") -> tuple[Path, list[str]]:
    """Write an lm-eval task folder for `subjects` ({subject: [{question, choices{A..D}, answer, where}]}).

    Returns (the folder, the task names, one per subject with a question left to score). Task names are
    ASCII (``tmmlu_000``...); the subject is the task's ``task_alias`` and ``metadata.subject``. The folder
    replaces `out_dir` in one rename.

    Raises:
        BailongError: `name` is not a lowercase identifier, an item lacks a question, four choices or an
            answer letter, or no subject has a question left after the `shots` demonstrations.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise BailongError(f"lm-eval task name '{name}' must be lowercase letters, digits and _")
    rows, problems = {}, []
    for subject, items in subjects.items():
        rows[subject] = []
        for n, it in enumerate(items):
            choices = it.get("choices") if isinstance(it, dict) else None
            if not (isinstance(choices, dict) and all(choices.get(k) for k in LETTERS) and it.get("question")
                    and it.get("answer") in LETTERS):
                problems.append((isinstance(it, dict) and it.get("where")) or f"{subject} item {n}")
                continue
            rows[subject].append({"prompt": prompt(it, []), "question": it["question"], "choices": [it["choices"][k] for k in LETTERS],
                                  "answer": LETTERS.index(it["answer"]), "where": it.get("where", "")})
    if problems:
        raise BailongError(f"lm-eval tasks: {len(problems)} item(s) without a question, four choices A-D and an answer "
                           f"letter, e.g. {problems[0]}")
    # The same split as multiple_choice.accuracy: the first k are demonstrations, the next per_subject are scored.
    splits = {s: (r[:shots], r[shots:][:per_subject]) for s, r in rows.items() if r[shots:][:per_subject]}
    if not splits:
        raise BailongError("multiple choice: no question left to score (per_subject/shots leave none)")

    out_dir = Path(out_dir).resolve()  # data_files must be absolute: lm-eval resolves them from its own cwd
    template_name = f"_{name}_template_yaml"  # no .yaml suffix: lm-eval indexes *.yaml files only, this is no task
    task_names = [f"{name}_{i:03d}" for i in range(len(splits))]
    with atomic_path(out_dir) as tmp:
        (tmp / "data").mkdir(parents=True)
        (tmp / template_name).write_text(TEMPLATE.format(shots=shots), encoding="utf-8")
        for task, (subject, (demos, scored)) in zip(task_names, splits.items()):
            files = {"test": scored, **({"fewshot": demos} if shots else {})}
            for split, split_rows in files.items():
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows)
                (tmp / "data" / f"{task}.{split}.jsonl").write_text(text, encoding="utf-8")
            config = {"include": template_name, "task": task, "task_alias": subject,
                      # datasets' Arrow cache inside the folder: replaced with it, never stale, nothing left in ~/.cache.
                      "dataset_kwargs": {"data_files": {split: str(out_dir / "data" / f"{task}.{split}.jsonl") for split in files},
                                         "cache_dir": str(out_dir / "cache")},
                      **({"fewshot_split": "fewshot"} if shots else {}),
                      "metadata": {"version": VERSION, "subject": subject}}
            (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        group = {"group": name, "task": task_names,
                 # weight_by_size: the group's figure is the micro accuracy (all questions), as in tmmluplus.
                 "aggregate_metric_list": [{"metric": m, "aggregation": "mean", "weight_by_size": True} for m in ("acc", "acc_norm")],
                 "metadata": {"version": VERSION, "shots": shots, "per_subject": per_subject}}
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(group, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out_dir, task_names


@contextlib.contextmanager
def _quiet():
    """lm-eval logs several INFO lines per task and draws one progress bar per task while building
    prompts, and datasets one per split: with 50 subjects that buries the one bar that matters
    (lm-eval's "Running loglikelihood requests"). Only its warnings (e.g. truncation) get through."""
    import datasets
    import lm_eval.api.task

    logger = logging.getLogger("lm_eval")
    level, bars_off, bar = logger.level, datasets.are_progress_bars_disabled(), lm_eval.api.task.tqdm
    logger.setLevel(logging.WARNING)
    # It warns once per question whose prompt is cut to max_length, in the middle of the progress bar: count instead.
    truncated = []

    def count_truncations(record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Combined length of context"):
            truncated.append(record)
            return False
        return True

    hf_logger = logging.getLogger("lm_eval.models.huggingface")  # a logger's filters see only its own records
    hf_logger.addFilter(count_truncations)
    datasets.disable_progress_bars()
    lm_eval.api.task.tqdm = lambda iterable, **kwargs: iterable
    try:
        yield
    finally:
        hf_logger.removeFilter(count_truncations)
        if truncated:
            log.warning("lm-eval: %d prompts cut from the left to max_length tokens, as the built-in scorer cuts them",
                        len(truncated))
        logger.setLevel(level)
        lm_eval.api.task.tqdm = bar
        if not bars_off:
            datasets.enable_progress_bars()


def evaluate(model, tokenizer, task_dir: Path, task_names: list[str], shots: int = 0, batch_size: int = 8,
             max_length: int = 2048) -> dict:
    """Run the tasks of `task_dir` (from `write_tasks`) on `model` with lm-eval; same keys as
    `multiple_choice.accuracy` plus acc_norm figures and ``backend``. lm-eval's own results go to
    ``lm_eval_results.json`` beside `task_dir`.

    `max_length` truncates prompts from the left as the built-in scorer does (lm-eval's default would be the
    model's context length). lm-eval scores each question with one forward pass (the four one-token
    answers share it) but over the whole vocabulary at every position, so it is slower than the built-in
    scorer, which keeps only the last position's logits.
    """
    from importlib.metadata import version

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with _quiet():
        # Its two warnings on construction only say that a model object, not a name, was passed: that is the point.
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
        logging.getLogger("lm_eval").setLevel(logging.WARNING)
        # include_defaults=False: index only this folder, not the harness's thousands of built-in YAMLs.
        manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        results = simple_evaluate(lm, tasks=list(task_names), num_fewshot=None, task_manager=manager, bootstrap_iters=0,
                                  log_samples=False)
    write_json(Path(task_dir).parent / "lm_eval_results.json", results)
    per, per_norm, right, right_norm, total = {}, {}, 0, 0, 0
    for task in task_names:
        n_shot = results["n-shot"][task]
        if n_shot != shots:
            raise BailongError(f"lm-eval task {task} in {task_dir} was written for {n_shot} shots, not {shots}")
        subject = results["configs"][task]["metadata"]["subject"]
        n = results["n-samples"][task]["effective"]
        acc, acc_norm = results["results"][task]["acc,none"], results["results"][task]["acc_norm,none"]
        per[subject], per_norm[subject] = round(acc, 4), round(acc_norm, 4)
        right, right_norm, total = right + round(acc * n), right_norm + round(acc_norm * n), total + n
    return {"shots": shots, "questions": total, "subjects": len(per), "accuracy_macro": round(sum(per.values()) / len(per), 4),
            "accuracy_micro": round(right / total, 4), "random_baseline": 0.25, "per_subject": per,
            "acc_norm_macro": round(sum(per_norm.values()) / len(per_norm), 4), "acc_norm_micro": round(right_norm / total, 4),
            "acc_norm_per_subject": per_norm, "backend": f"lm-eval {version('lm_eval')}"}
