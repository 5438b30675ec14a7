"""corpus stage: sources -> clean, Traditional-script, deduplicated, mixed training shards + held-out shards.

Writes ``train/`` and ``heldout/`` (one shard per task), ``stats.json``, ``stats.md`` and
``stats.png``; with ``write_rejected`` also ``rejected/<reason>/``. Every document read is
accounted for: held out, in training, sampled out by the mix, or dropped with a reason; lines that
could not be read at all are counted with file:line.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from bailong.config import BailongError, StageResult
from bailong.corpus import pipeline
from bailong.corpus.config import CorpusConfig
from bailong.corpus.readers import resolve_files
from bailong.corpus.report import write_report
from bailong.corpus.steps import read_tallies
from bailong.io import write_json

log = logging.getLogger(__name__)
WORK_LAYOUT = 2  # bump when work/'s files change shape, so an old crashed run is not resumed (2: plain-JSONL prepared/)


def _prepare_work(cfg: CorpusConfig) -> Path:
    """work/ survives a crash so completed tasks are skipped; a different config starts it afresh."""
    work = cfg.out_dir / "work"
    fingerprint = json.dumps({"layout": WORK_LAYOUT, **cfg.fingerprint_config()}, sort_keys=True)
    marker = work / "config.json"
    if work.exists() and (not marker.exists() or marker.read_text() != fingerprint):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)
    return work


def accounting(cfg: CorpusConfig, tally_dir: Path) -> dict:
    """Per-source books from the steps' tallies; raises if they do not balance."""
    read, clean, mix = (read_tallies(tally_dir, s) for s in ("read", "clean", "mix"))
    stages = [("exact_duplicate", read_tallies(tally_dir, "after-exact")) if cfg.exact_dedup else None,
              ("near_duplicate", read_tallies(tally_dir, "after-minhash")) if cfg.minhash.enabled else None,
              ("semantic_duplicate", read_tallies(tally_dir, "after-semantic")) if cfg.semantic.enabled else None]
    per_source = {}
    for source in dict.fromkeys(s.label for s in cfg.sources):
        row: Counter = Counter({k.split("|", 1)[1]: v for part in (read, clean, mix) for k, v in part.items()
                                if k.startswith(source + "|")})
        left = row["kept"]
        for reason, counts in filter(None, stages):
            after = counts.get(f"{source}|docs", 0)
            row[f"dropped:{reason}"] = left - after
            left = after
        dropped = sum(v for k, v in row.items() if k.startswith("dropped:"))
        out = row["heldout_docs"] + row["train_unique_docs"] + row["sampled_out"]
        if row["read"] != out + dropped:
            raise BailongError(f"corpus: the books do not balance for '{source}': {row['read']} read, {out} out, {dropped} dropped")
        per_source[source] = dict(sorted(row.items()))
    return per_source


def _quiet_datatrove() -> None:
    """datatrove prints every step's stats of every task; our stats.md says it once. BAILONG_DATATROVE_LOGS=1 keeps them."""
    import os

    from loguru import logger

    if os.environ.get("BAILONG_DATATROVE_LOGS") != "1":
        logger.disable("datatrove")


def run(cfg: CorpusConfig) -> StageResult:
    _quiet_datatrove()
    for source in cfg.sources:
        resolve_files(source)  # fail fast on a glob matching nothing; fetch a built-in corpus once
    work = _prepare_work(cfg)
    tally = work / "tally"
    try:
        pipeline.run(cfg, work)
    except pipeline.NothingKept:
        total = read_tallies(tally, "read") + read_tallies(tally, "clean")
        count = Counter()
        for key, value in total.items():
            count[key.split("|", 1)[1]] += value
        drops = Counter()
        for key, value in total.items():
            if "|dropped:" in key:
                drops[key.split("|dropped:", 1)[1]] += value
        raise BailongError(f"corpus is empty: no document kept from {', '.join(s.path for s in cfg.sources)} "
                           f"({count['read']} read, {count['unreadable']} unreadable; drops: {dict(drops)})") from None
    if len(list(tally.glob("mix-*.json"))) != cfg.executor.tasks:
        raise BailongError(f"corpus: not every final task finished (see {work / 'logs' / 'final'}); run again to resume")
    per_source = accounting(cfg, tally)
    total = Counter()
    for row in per_source.values():
        total.update(row)
    if total["train_docs"] == 0:
        raise BailongError(f"corpus: every kept document went to held-out or was sampled out ({total['read']} read); "
                           "lower heldout_fraction or check the mixing weights")
    problems = [p for f in sorted(tally.glob("read-*.json")) for p in json.loads(f.read_text()).get("problems", [])]
    stats = {
        "documents_read": total["read"],
        "documents_kept": total["heldout_docs"] + total["train_unique_docs"],
        "dropped": {k[8:]: v for k, v in sorted(total.items()) if k.startswith("dropped:") and v},
        "sampled_out_by_mix": total["sampled_out"],
        "converted_to_traditional": total["converted"],
        "boilerplate_lines_removed": total["boilerplate_lines"],
        "unreadable": total["unreadable"],
        "unreadable_examples": problems[:50],
        **{k: total[k] for k in ("train_docs", "train_chars", "train_han_chars", "heldout_docs", "heldout_chars")},
        "per_source": per_source,
    }
    out = cfg.out_dir
    for name in ("train", "heldout", "rejected"):
        shutil.rmtree(out / name, ignore_errors=True)
        if (work / "final" / name).exists():
            (work / "final" / name).replace(out / name)
    (out / "heldout").mkdir(exist_ok=True)  # heldout_fraction 0: an empty folder, not a missing one
    write_json(out / "stats.json", stats)
    write_report(stats, out)
    if not cfg.keep_work:
        shutil.rmtree(work)
    log.info("corpus: %d read, %d kept (%d training characters), dropped %s, %d unreadable",
             stats["documents_read"], stats["documents_kept"], stats["train_chars"], stats["dropped"], stats["unreadable"])
    artifacts = {"train": out / "train", "heldout": out / "heldout", "stats": out / "stats.json", "report": out / "stats.md"}
    return StageResult(artifacts, stats)
