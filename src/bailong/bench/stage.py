"""bench stage: answers to benchmark questions, Traditional Chinese gates, optional LLM judge, bits/char.

Writes ``answers.jsonl`` (FastChat model_answer format plus the gate result; appended per question,
so an interrupted run resumes), with a judge ``judgments.jsonl`` (FastChat model_judgment format plus
a per-item status) and ``judge_cache.sqlite`` (no judgment is ever asked twice), and ``stats.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch
from tqdm import tqdm

from bailong.bench import checks
from bailong.bench.generation import answer
from bailong.bench.config import BenchConfig, Endpoint
from bailong.config import BailongError, StageResult
from bailong.io import read_jsonl, read_texts, write_json, write_jsonl
from bailong.metrics import bpc_zh_en, english_sample
from bailong.models import load_model, load_tokenizer

log = logging.getLogger(__name__)


def load_questions(ref: str, ids: list[int] | None, references: Path | None = None) -> list[dict]:
    """FastChat questions; a missing ``language`` is inferred from the first turn (MT-Bench has none),
    and reference answers (FastChat's reference_answer/<model>.jsonl) are attached by question id."""
    if ref == "builtin:bailong-bench":
        path = Path(str(resources.files("bailong") / "data" / "bailong_bench" / "question.jsonl"))
    elif ref.startswith("builtin:"):
        raise BailongError(f"unknown built-in question set '{ref}' (known: builtin:bailong-bench)")
    else:
        path = Path(ref)
        if not path.is_file():
            raise BailongError(f"question file '{ref}' does not exist")
    questions = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            assert isinstance(q["question_id"], int) and q["turns"] and all(isinstance(t, str) for t in q["turns"])
        except (ValueError, KeyError, TypeError, AssertionError):
            raise BailongError(f"{path}:{lineno}: not a FastChat question (question_id, turns)") from None
        q.setdefault("language", checks.question_language(q["turns"]))
        questions.append(q)
    if references is not None:
        attach_references(questions, references)
    if ids is not None:
        known = {q["question_id"] for q in questions}
        missing = sorted(set(ids) - known)
        if missing:
            raise BailongError(f"question ids not in {path}: {missing}")
        questions = [q for q in questions if q["question_id"] in set(ids)]
    return questions


def attach_references(questions: list[dict], path: Path) -> None:
    if not Path(path).is_file():
        raise BailongError(f"reference answers '{path}' do not exist")
    by_id = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        try:
            by_id[row["question_id"]] = row["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError):
            raise BailongError(f"{path}:{lineno}: not a FastChat answer (question_id, choices[0].turns)") from None
    for q in questions:
        if "reference" not in q and q["question_id"] in by_id:
            q["reference"] = by_id[q["question_id"]]


def answer_remote(client, endpoint: Endpoint, turns: list[str], cfg: BenchConfig) -> list[str]:
    """`answer` through an OpenAI-compatible endpoint. top_k and repetition_penalty go in the request
    body as vLLM and `bailong serve` accept them; temperature 0 is greedy."""
    messages, answers = [], []
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed} if cfg.do_sample else {"temperature": 0}
    extra = {"repetition_penalty": cfg.repetition_penalty} | ({"top_k": cfg.top_k} if cfg.do_sample else {})
    for turn in turns:
        messages.append({"role": "user", "content": turn})
        reply = client.chat.completions.create(model=endpoint.model, messages=messages, max_tokens=cfg.max_new_tokens,
                                               extra_body=extra, **sampling)
        text = (reply.choices[0].message.content or "").rstrip("\ufffd").strip()  # as generate_batch does
        messages.append({"role": "assistant", "content": text})
        answers.append(text)
    return answers


def scores_by(rows: list[dict], key: str) -> dict[str, dict]:
    """Questions, gate pass rate and (when judged) mean judge score per value of `key` (category, language)."""
    out = {}
    for value in sorted({r[key] or "none" for r in rows}):
        mine = [r for r in rows if (r[key] or "none") == value]
        entry = {"questions": len(mine), "pass_rate": round(sum(not r["gate"] for r in mine) / len(mine), 3)}
        scored = [r["score"] for r in mine if r.get("score") is not None]
        if scored:
            entry["judge_mean"] = round(sum(scored) / len(scored), 2)
        out[value] = entry
    return out


def run(cfg: BenchConfig) -> StageResult:
    """Evaluate `model` (or the endpoint); then each of `compare_models` the same way, one at a time, under
    out_dir/compare/<label>/, and put them all side by side in out_dir/comparison.{md,html}."""
    result = evaluate(cfg)
    if not cfg.compare_models:
        return result
    import gc

    from bailong.bench.compare import write_comparison

    main = cfg.answer_endpoint.model if cfg.model is None else cfg.model.parent.name
    specs, skipped = [f"{main}={cfg.out_dir}"], []
    for label, path in cfg.compare_models.items():
        gc.collect()  # the previous model's memory, before the next one loads
        log.info("bench: evaluating %s (%s) for the comparison", label, path)
        update = {"model": Path(path), "answer_endpoint": None, "compare_models": {}, "out_dir": cfg.out_dir / "compare" / label,
                  "judge_cache": cfg.judge_cache or cfg.out_dir / "judge_cache.sqlite"}
        if not load_tokenizer(Path(path)).chat_template:  # a base model: only what needs no chat is comparable
            log.warning("bench: %s has no chat template; it gets bits/char and multiple choice only", label)
            update |= {"question_ids": [], "drcd": None, "translation": None}
            skipped.append(label)
        evaluate(cfg.model_copy(update=update))
        specs.append(f"{label}={update['out_dir']}")
    written = write_comparison(specs, cfg.out_dir)
    result.stats["comparison"] = {"models": [s.split("=", 1)[0] for s in specs], "markdown": str(written["markdown"]),
                                  "without_chat_template": skipped}
    write_json(cfg.out_dir / "stats.json", result.stats)
    return StageResult({**result.artifacts, "comparison": written["markdown"], "comparison_html": written["html"]}, result.stats)


def evaluate(cfg: BenchConfig) -> StageResult:
    if cfg.model is None and cfg.answer_endpoint is None:
        raise BailongError("bench: 'model' (a model folder) or 'answer_endpoint' (an OpenAI-compatible server) is required")
    if cfg.model is None and (cfg.tmmlu or cfg.eval_corpus or cfg.drcd or cfg.translation):
        raise BailongError("bench: bits/char, TMMLU, DRCD and translation run on 'model' (a model folder), not on an endpoint")
    if cfg.translation is not None and len(cfg.translation) != 2:
        raise BailongError("bench: translation takes two line-aligned files, [english.txt, zh_tw.txt]")
    questions = load_questions(cfg.questions, cfg.question_ids, cfg.reference_answers)
    model = tok = client = None
    if cfg.model is not None:
        model, tok = load_model(cfg.model), load_tokenizer(cfg.model)
    if cfg.answer_endpoint is not None:
        from bailong.bench.judge import make_client

        client = make_client(cfg.answer_endpoint, "bench answer_endpoint")
    elif questions and not tok.chat_template:
        raise BailongError(f"bench: {cfg.model} has no chat template (set question_ids: [] to run only bits/char and TMMLU)")
    gen = {"max_new_tokens": cfg.max_new_tokens, "do_sample": cfg.do_sample, "repetition_penalty": cfg.repetition_penalty}
    if cfg.do_sample:
        gen |= {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
    torch.manual_seed(cfg.seed)

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    answers_path = out / "answers.jsonl"
    model_id = cfg.answer_endpoint.model if client is not None else cfg.model.parent.name + "/" + cfg.model.name
    # Answers of an interrupted run of the same model are reused; another model's are not.
    done = {r["question_id"]: r for r in read_jsonl(answers_path) if r.get("model_id") == model_id} if answers_path.exists() else {}
    with open(answers_path, "a", encoding="utf-8") as f:
        pending = [q for q in questions if q["question_id"] not in done]
        bar = tqdm(total=len(questions), initial=len(questions) - len(pending), desc="bench answers", unit=" questions")
        for start in range(0, len(pending), cfg.batch_size):
            chunk = pending[start : start + cfg.batch_size]
            if client is not None:  # concurrent requests: a vLLM server batches them
                with ThreadPoolExecutor(max_workers=len(chunk)) as pool:
                    all_turns = list(pool.map(lambda q: answer_remote(client, cfg.answer_endpoint, q["turns"], cfg), chunk))
            else:
                all_turns = answer(model, tok, [q["turns"] for q in chunk], gen)
            for q, turns in zip(chunk, all_turns):
                lang_rule = not checks.mixed_language(q["turns"])
                reason = next((r for r in (checks.gate(a, q["language"], q.get("category", ""), lang_rule) for a in turns) if r), None)
                row = {"question_id": q["question_id"], "model_id": model_id, "category": q.get("category"),
                       "language": q.get("language"), "choices": [{"index": 0, "turns": turns}], "gate": reason,
                       "tstamp": time.time()}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                done[q["question_id"]] = row
            f.flush()  # a killed run keeps every finished batch
            bar.update(len(chunk))
        bar.close()
    rows = [done[q["question_id"]] for q in questions]

    if cfg.judge is not None:
        from bailong.bench.judge import judge_answers

        items = [{"question_id": q["question_id"], "model": model_id, "turns": q["turns"], "answers": r["choices"][0]["turns"],
                  "reference": q.get("reference"), "gate": r["gate"]} for q, r in zip(questions, rows)]
        judgments, statuses = judge_answers(cfg.judge, items, cfg.judge_cache or out / "judge_cache.sqlite")
        for row, j in zip(rows, judgments):
            row["score"], row["judge_status"] = j["score"], j["status"]
        write_jsonl(out / "judgments.jsonl", judgments)

    gates = Counter((r["gate"] or "pass").split(":")[0] for r in rows)
    stats: dict = {"questions": len(rows), "decoding": {**gen, "batch_size": cfg.batch_size}, "gate": dict(gates)}
    if cfg.judge is not None:
        stats["judge_status"] = dict(statuses)
        stats["judge_problems"] = [f"question {j['question_id']}: {j['status']}: {j['judgment'][:200]}"
                                   for j in judgments if j["status"] in ("error", "no rating")]
    for lang, entry in scores_by(rows, "language").items():
        stats[f"pass_rate_{lang}"] = entry["pass_rate"]
        if "judge_mean" in entry:
            stats[f"judge_mean_{lang}"] = entry["judge_mean"]
    stats["by_category"] = scores_by(rows, "category")
    if model is not None:  # bits/char and TMMLU score log-likelihoods: they need the weights, not an endpoint
        zh = read_texts(cfg.eval_corpus, cfg.eval_chars) if cfg.eval_corpus else []
        stats["bpc"] = bpc_zh_en(model, tok, zh, [english_sample(cfg.eval_chars)], "bench")
    if cfg.tmmlu is not None and model is not None:
        from bailong.bench.multiple_choice import accuracy, read_questions

        subjects, problems = read_questions(cfg.tmmlu)
        if cfg.tmmlu_backend == "lm-eval":
            from bailong.bench import harness

            tasks = harness.write_tasks(subjects, out / "lm_eval_tasks", cfg.tmmlu_shots, cfg.tmmlu_per_subject)
            scores = harness.evaluate(model, tok, *tasks, cfg.tmmlu_shots, cfg.batch_size)
        else:
            scores = accuracy(model, tok, subjects, cfg.tmmlu_shots, cfg.tmmlu_per_subject)
        stats["tmmlu"] = {**scores, "skipped": len(problems), "skipped_examples": problems[:10]}
    if cfg.drcd is not None:
        from bailong.bench import extractive

        items, problems = extractive.read_qa(cfg.drcd, cfg.drcd_limit)
        stats["drcd"] = {**extractive.evaluate(model, tok, items, cfg.batch_size), "skipped": len(problems), "skipped_examples": problems[:10]}
    if cfg.translation is not None:
        from bailong.bench import translation

        stats["translation"] = translation.evaluate(model, tok, translation.read_pairs(*cfg.translation, cfg.translation_limit), cfg.batch_size)
    stats["samples"] = [{"question_id": q["question_id"], "question": q["turns"][0], "answer": r["choices"][0]["turns"][0], "gate": r["gate"]}
                        for q, r in zip(questions, rows)]
    write_json(out / "stats.json", stats)
    log.info("bench: %d questions, gates %s, bits/char %s", len(rows), dict(gates), stats.get("bpc"))
    return StageResult({"answers": answers_path, "stats": out / "stats.json"}, stats)
