"""DRCD-style extractive reading comprehension: exact match and F1 over characters.

Two inputs are read:
  - DRCD / SQuAD JSON (``data[].paragraphs[].{context, qas[].{question, answers[].text}}``), one
    question per prompt with its passage;
  - chat JSONL in OpenAI ``messages`` form where each assistant turn is a gold answer (e.g.
    ../shared/data/sft/drcd_dev_multiturn_qa.jsonl): every user turn is asked with the *gold*
    earlier turns as history, so one wrong answer does not spoil the next question.

Scoring follows the DRCD/CMRC convention for Chinese: answers are compared after removing
whitespace and punctuation (and lower-casing Latin letters); F1 counts overlapping characters.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from bailong.config import BailongError

PROMPT = "請閱讀以下文章，然後回答問題。答案請盡量簡潔，直接從文章中摘錄。\n\n{context}\n\n問題：{question}"


def normalize(text: str) -> str:
    """Lower-cased, without whitespace or punctuation (Unicode categories P* and S*).

    >>> normalize(" 「臺北市」。 Taipei! ")
    '臺北市taipei'
    """
    return "".join(c for c in text.lower() if not c.isspace() and unicodedata.category(c)[0] not in "PS")


def em_f1(prediction: str, golds: list[str]) -> tuple[float, float]:
    """Best exact match and character F1 of a prediction against any of the gold answers.

    >>> em_f1("臺北", ["臺北市"])
    (0.0, 0.8)
    """
    pred = normalize(prediction)
    best_em = best_f1 = 0.0
    for gold in map(normalize, golds):
        best_em = max(best_em, float(pred == gold))
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best_f1 = max(best_f1, 2 * precision * recall / (precision + recall))
    return best_em, best_f1


def read_qa(path: Path, limit: int | None = None) -> tuple[list[dict], list[str]]:
    """(items of {id, messages, golds}, problems as file:line or id: reason)."""
    path = Path(path)
    if not path.is_file():
        raise BailongError(f"reading-comprehension file '{path}' does not exist")
    items, problems = [], []
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        for article in data.get("data", []):
            for para in article.get("paragraphs", []):
                for qa in para.get("qas", []):
                    golds = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                    if not golds:
                        problems.append(f"{qa.get('id', '?')}: no answer text")
                        continue
                    prompt = PROMPT.format(context=para["context"], question=qa["question"])
                    items.append({"id": str(qa.get("id")), "messages": [{"role": "user", "content": prompt}], "golds": golds})
    else:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
                roles = [m["role"] for m in messages]
            except (ValueError, KeyError, TypeError):
                problems.append(f"{path.name}:{lineno}: not a JSON object with messages")
                continue
            for k, m in enumerate(messages):
                if m["role"] == "assistant" and k > 0 and roles[k - 1] == "user":
                    items.append({"id": f"{path.name}:{lineno}:{k}", "messages": messages[:k], "golds": [m["content"]]})
    if not items:
        raise BailongError(f"{path}: no questions with gold answers found")
    return items[:limit] if limit else items, problems


def evaluate(model, tok, items: list[dict], batch_size: int, max_new_tokens: int = 32) -> dict:
    """Greedy answers to every item; EM and F1 in percent, with a few examples to read."""
    from bailong.bench.generation import generate_batch

    if not tok.chat_template:
        raise BailongError("bench: reading comprehension asks questions in chat form; the model has no chat template")
    gen = {"max_new_tokens": max_new_tokens, "do_sample": False}
    scores, examples = [], []
    for start in tqdm(range(0, len(items), batch_size), desc="reading comprehension", unit=" batches"):
        chunk = items[start : start + batch_size]
        for item, pred in zip(chunk, generate_batch(model, tok, [i["messages"] for i in chunk], gen)):
            em, f1 = em_f1(pred, item["golds"])
            scores.append((em, f1))
            if len(examples) < 5:
                examples.append({"id": item["id"], "question": item["messages"][-1]["content"][-80:], "answer": pred,
                                 "gold": item["golds"][0], "em": em, "f1": round(f1, 3)})
    n = len(scores)
    return {"questions": n, "exact_match": round(100 * sum(e for e, _ in scores) / n, 2),
            "f1": round(100 * sum(f for _, f in scores) / n, 2), "examples": examples}
