"""corpus stage: sources -> normalized, Traditional-script, deduplicated train.jsonl + heldout.jsonl.

Every document read is accounted for in stats.json: kept (train or held out) or dropped with a
reason; unreadable lines are counted with file:line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from functools import partial

from tqdm import tqdm

from bailong.config import BailongError, StageResult
from bailong.corpus.config import CorpusConfig
from bailong.corpus.filters import ExactDedup, min_han, min_length, normalize
from bailong.corpus.readers import read_source
from bailong.io import atomic_path, write_json
from bailong.zh import han_count, simplified_chars, to_traditional

log = logging.getLogger(__name__)
MAX_PROBLEMS_LISTED = 50


def _is_heldout(text: str, cfg: CorpusConfig) -> bool:
    digest = hashlib.sha1(f"{cfg.seed}\0{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < cfg.heldout_fraction


def run(cfg: CorpusConfig) -> StageResult:
    filters = [partial(min_length, min_chars=cfg.min_chars), partial(min_han, min_ratio=cfg.min_han_ratio), ExactDedup()]
    dropped: Counter[str] = Counter()
    per_source: dict[str, Counter] = {}
    problems: list[str] = []
    n_problems = 0
    totals = Counter()
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "train.jsonl") as train_tmp, atomic_path(out / "heldout.jsonl") as held_tmp:
        with open(train_tmp, "w", encoding="utf-8") as train_f, open(held_tmp, "w", encoding="utf-8") as held_f:
            for source in cfg.sources:
                counts = per_source.setdefault(source.name or source.path, Counter())
                kept_chars = 0
                for doc, problem in tqdm(read_source(source), desc=f"corpus {source.name or source.path}", unit=" docs"):
                    if source.max_chars is not None and kept_chars >= source.max_chars:
                        counts["capped_at_chars"] = source.max_chars  # the rest of the source is not read
                        break
                    if problem is not None:
                        n_problems += 1
                        counts["unreadable"] += 1
                        if len(problems) < MAX_PROBLEMS_LISTED:
                            problems.append(problem)
                        continue
                    counts["read"] += 1
                    text = normalize(doc.text)
                    if source.convert != "none" and simplified_chars(text):
                        text = to_traditional(text, source.convert)
                        counts["converted"] += 1
                    for keep in filters:
                        verdict = keep(text)
                        if verdict is not True:
                            dropped[verdict[1]] += 1
                            counts[f"dropped:{verdict[1]}"] += 1
                            break
                    else:
                        held = totals["heldout_chars"] < cfg.heldout_chars and _is_heldout(text, cfg)
                        row = {"id": doc.id, "text": text, "source": doc.source}
                        (held_f if held else train_f).write(json.dumps(row, ensure_ascii=False) + "\n")
                        split = "heldout" if held else "train"
                        totals[f"{split}_docs"] += 1
                        totals[f"{split}_chars"] += len(text)
                        totals[f"{split}_han_chars"] += han_count(text)
                        counts["kept"] += 1
                        kept_chars += len(text)
    read = sum(c["read"] for c in per_source.values())
    if totals["train_docs"] == 0:
        names = ", ".join(s.path for s in cfg.sources)
        raise BailongError(f"corpus is empty: no document kept from {names} ({read} read, {dict(dropped)} dropped)")
    stats = {
        "documents_read": read,
        "documents_kept": totals["train_docs"] + totals["heldout_docs"],
        "dropped": dict(dropped),
        "converted_to_traditional": sum(c["converted"] for c in per_source.values()),
        "unreadable": n_problems,
        "unreadable_examples": problems,
        **{k: v for k, v in totals.items()},
        "per_source": {k: dict(v) for k, v in per_source.items()},
    }
    # The books must balance: every document read is kept or dropped for a named reason.
    assert stats["documents_kept"] + sum(dropped.values()) == read, stats
    write_json(out / "stats.json", stats)
    log.info("corpus: %d read, %d kept, dropped %s, %d unreadable", read, stats["documents_kept"], dict(dropped), n_problems)
    return StageResult({"train": out / "train.jsonl", "heldout": out / "heldout.jsonl", "stats": out / "stats.json"}, stats)
