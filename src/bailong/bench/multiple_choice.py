"""Multiple-choice accuracy by log-likelihood on TMMLU-style files (52 subjects of Taiwanese exams),
or TTQA/MMLU-style JSON.

Layout read: ``<folder>/subjects/<subject>/data.csv`` (or ``<folder>/<subject>/data.csv``) with the
answer letter in ``content.A`` and the question, its choices written inline as ``(A)...(B)...
(C)...(D)...``, in ``content.Q``. A row whose choices are not exactly (A)-(D) (open questions of
the history exams, for instance) is skipped and listed as ``file:row``.

Scoring follows MMLU's: the prompt ends with ``答案：`` and the model's next-token log-probabilities
of the four letters decide; k-shot prompts prepend the subject's first k questions with their
answers (those are then not scored).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch
from tqdm import tqdm

from bailong.config import BailongError

LETTERS = ("A", "B", "C", "D")
_CHOICE = re.compile(r"\(([A-D])\)")


def read_tmmlu(folder: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """({subject: [{question, choices, answer, where}]}, problems as 'file:row: reason')."""
    folder = Path(folder)
    files = sorted(folder.glob("subjects/*/data.csv")) or sorted(folder.glob("*/data.csv"))
    if not files:
        raise BailongError(f"{folder} holds no <subject>/data.csv (TMMLU layout)")
    subjects, problems = {}, []
    for path in files:
        items = []
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for row_no, row in enumerate(reader, 2):  # line 1 is the header
                answer, text = (row.get("content.A") or "").strip(), row.get("content.Q") or ""
                parts = _CHOICE.split(text)
                if parts[1::2] != list(LETTERS) or answer not in LETTERS:
                    problems.append(f"{path}:{row_no}: not a question with choices (A)-(D) and an answer letter")
                    continue
                choices = dict(zip(LETTERS, (p.strip() for p in parts[2::2])))
                items.append({"question": parts[0].strip(), "choices": choices, "answer": answer, "where": f"{path}:{row_no}"})
        if items:
            subjects[path.parent.name] = items
    return subjects, problems


def read_choices_file(path: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """TTQA/MMLU-style JSON (a list) or JSONL of four-choice questions, grouped by ``subject`` (or
    ``category``). Choices are ``choices`` (a list of 4, or {A..D}) or top-level A-D keys; ``answer``
    is a letter or an index 0-3. Anything else is skipped and listed as file:item: reason."""
    import json

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise BailongError(f"{path}: not JSON/JSONL ({exc})") from None
    subjects: dict[str, list[dict]] = {}
    problems = []
    for n, row in enumerate(rows if isinstance(rows, list) else [], 1):
        choices = row.get("choices") if isinstance(row, dict) else None
        if isinstance(choices, dict):
            choices = [choices.get(k) for k in LETTERS]
        elif choices is None and isinstance(row, dict):
            choices = [row.get(k) for k in LETTERS]
        answer = row.get("answer") if isinstance(row, dict) else None
        answer = LETTERS[answer] if isinstance(answer, int) and 0 <= answer < 4 else str(answer).strip().upper()
        if not isinstance(row, dict) or not row.get("question") or not isinstance(choices, list) or len(choices) != 4 \
                or not all(isinstance(c, str) and c for c in choices) or answer not in LETTERS:
            problems.append(f"{path}:{n}: not a question with four choices and an answer letter or index")
            continue
        subject = str(row.get("subject") or row.get("category") or path.stem)
        subjects.setdefault(subject, []).append({"question": row["question"].strip(), "choices": dict(zip(LETTERS, choices)),
                                                 "answer": answer, "where": f"{path}:{n}"})
    if not subjects:
        raise BailongError(f"{path}: no four-choice question found")
    return subjects, problems


def read_questions(source: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """A TMMLU-style folder or a TTQA/MMLU-style JSON/JSONL file, whichever `source` is."""
    source = Path(source)
    if not source.exists():
        raise BailongError(f"multiple-choice source '{source}' does not exist")
    return read_tmmlu(source) if source.is_dir() else read_choices_file(source)


def prompt(item: dict, shots: list[dict]) -> str:
    def block(it: dict, with_answer: bool) -> str:
        lines = [it["question"], *(f"({k}) {v}" for k, v in it["choices"].items())]
        return "\n".join(lines) + "\n答案：" + (it["answer"] + "\n\n" if with_answer else "")

    return "".join(block(s, True) for s in shots) + block(item, False)


def letter_ids(tokenizer) -> list[int]:
    """The token id of each letter as the first token after '答案：' (it must be a single token)."""
    ids = []
    for letter in LETTERS:
        pieces = tokenizer(letter, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise BailongError(f"multiple choice: '{letter}' is {len(pieces)} tokens for this tokenizer, not one")
        ids.append(pieces[0])
    return ids


@torch.inference_mode()
def letter_scores(model, tokenizer, prompts: list[list[int]], batch_size: int = 8) -> torch.Tensor:
    """(len(prompts), 4) next-token logits of A-D after each tokenized prompt, in the prompts' order."""
    letters = torch.tensor(letter_ids(tokenizer))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths per batch: little padding
    out = torch.zeros((len(prompts), len(LETTERS)))
    for b in tqdm(range(0, len(order), batch_size), desc="multiple choice", unit=" batches", leave=False):
        batch = [prompts[i] for i in order[b:b + batch_size]]
        width = max(map(len, batch))
        # Left padding puts every prompt's last token in the last column, so only that column's logits are
        # computed (logits_to_keep=1) instead of a (batch, length, vocabulary) tensor.
        ids = torch.full((len(batch), width), pad)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=1, use_cache=False).logits[:, -1]
        out[order[b:b + batch_size]] = logits[:, letters.to(device)].float().cpu()
    return out


def accuracy(model, tokenizer, subjects: dict[str, list[dict]], shots: int = 0, per_subject: int | None = None,
             batch_size: int = 8, max_length: int = 2048) -> dict:
    """Accuracy per subject, macro (mean of subjects) and micro (all questions), with the 25% chance line."""
    jobs = []  # (subject, answer index)
    prompts = []
    for subject, items in subjects.items():
        demos, scored = items[:shots], items[shots:][:per_subject]
        for it in scored:
            prompts.append(tokenizer(prompt(it, demos), add_special_tokens=True)["input_ids"][-max_length:])
            jobs.append((subject, LETTERS.index(it["answer"])))
    if not jobs:
        raise BailongError("multiple choice: no question left to score (per_subject/shots leave none)")
    picks = letter_scores(model, tokenizer, prompts, batch_size).argmax(-1).tolist()
    right: dict[str, list[bool]] = {}
    for (subject, answer), pick in zip(jobs, picks):
        right.setdefault(subject, []).append(pick == answer)
    per = {s: round(sum(r) / len(r), 4) for s, r in right.items()}
    flat = [x for r in right.values() for x in r]
    return {"shots": shots, "questions": len(flat), "subjects": len(per), "accuracy_macro": round(sum(per.values()) / len(per), 4),
            "accuracy_micro": round(sum(flat) / len(flat), 4), "random_baseline": 0.25, "per_subject": per}
