"""Corpus stage throughput: MB/s per core of the whole pipeline and peak memory, at 1x and 4x input.

    .venv/bin/python benchmarks/corpus_throughput.py [--scales 1 4] [--workers 1]

Input: ../shared/data/corpus (statutes text, laws JSONL.gz, CAF JSONL, moztw sentences) and
../shared/data/english. 4x is four copies of every file under different names: the same documents
four times, so the dedup stages do real work and memory must stay flat as input grows. MB are the
UTF-8 bytes of the documents' text as read (compressed files count decompressed). Each run is a
fresh process; peak RSS is that process's own (with workers > 1, worker processes are not included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))
from _child import run_child  # noqa: E402

SOURCES = [  # (file or glob under ../shared/data, source keys)
    ("corpus/tw_statutes_zh.txt", {"name": "statutes"}),
    ("corpus/tw_laws_zh.jsonl.gz", {"name": "laws", "text_field": ["name", "preamble", "articles.text"]}),
    ("corpus/caf_zh_tw.jsonl", {"name": "caf"}),
    ("corpus/moztw_cc0_sentences/*.txt", {"name": "moztw", "split": "line"}),
    ("english/english_pd_combined_clean.txt", {"name": "english", "convert": "none"}),
]

CHILD = """
import json, sys, time
from bailong.corpus import CorpusConfig, run
cfg = CorpusConfig(**json.loads(sys.argv[1]))
start = time.perf_counter()
result = run(cfg)
print(json.dumps({"seconds": time.perf_counter() - start, "stats": result.stats}))
"""


def _inputs(folder: Path, scale: int) -> list[dict]:
    sources = []
    for pattern, keys in SOURCES:
        files = sorted(SHARED.glob(pattern))
        sub = folder / keys["name"]
        sub.mkdir(parents=True, exist_ok=True)
        for copy in range(scale):
            for f in files:
                (sub / f"copy{copy}-{f.name}").symlink_to(f)
        sources.append({**keys, "path": str(sub / "*")})
    return sources


def _run(sources: list[dict], out: Path, workers: int) -> dict:
    cfg = {"sources": sources, "out_dir": str(out), "heldout_fraction": 0.001, "output_format": "jsonl.zst",
           "executor": {"tasks": max(workers, 1) * 2, "workers": workers}}
    result, peak = run_child([sys.executable, "-c", CHILD, json.dumps(cfg)], env=os.environ | {"TQDM_DISABLE": "1"})
    result["peak_rss_gb"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4], help="input multiples to run")
    parser.add_argument("--workers", type=int, default=1, help="local workers (cores used); tasks = 2 x workers")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "corpus_throughput.md", help="markdown table")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs ../shared/data beside the repository ({SHARED} is absent)")
    rows = []
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as tmp:
            sources = _inputs(Path(tmp) / "in", scale)
            start = time.perf_counter()
            r = _run(sources, Path(tmp) / "out", args.workers)
            wall = time.perf_counter() - start
        s = r["stats"]
        chars = sum(v.get("read_chars", 0) for v in s["per_source"].values())
        mb = sum(v.get("read_bytes", 0) for v in s["per_source"].values()) / 1e6
        rows.append({"input": f"{scale}x", "documents read": s["documents_read"], "characters read": chars, "MB read": round(mb, 1),
                     "kept": s["documents_kept"], "dropped": sum(s["dropped"].values()), "stage seconds": round(r["seconds"], 1),
                     "process seconds": round(wall, 1), "MB/s per core": round(mb / r["seconds"] / args.workers, 2),
                     "peak RSS GB": round(r["peak_rss_gb"], 2)})
        print(rows[-1], flush=True)
    cols = list(rows[0])
    lines = [f"# Corpus throughput ({args.workers} worker(s), {os.cpu_count()} cores on the machine)", "",
             "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols) + " |" for r in rows]
    if len(rows) > 1:
        lines += ["", f"{rows[-1]['input']} vs {rows[0]['input']}: throughput x{rows[-1]['MB/s per core'] / rows[0]['MB/s per core']:.2f}, "
                      f"peak memory x{rows[-1]['peak RSS GB'] / rows[0]['peak RSS GB']:.2f}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
