"""Several bench runs side by side (base, adapted, instruct ...): one table of every metric they share,
per-language and per-category scores, a plot, as markdown and HTML.

Each run is a bench stage's output folder (its stats.json); nothing is re-evaluated here.
"""

from __future__ import annotations

import json
from pathlib import Path

from bailong.config import BailongError
from bailong.io import write_text


def load_runs(specs: list[str]) -> dict[str, dict]:
    """{label: stats} from LABEL=FOLDER or FOLDER (labelled by its parent folder, e.g. runs/x/bench -> x)."""
    runs = {}
    for spec in specs:
        label, _, folder = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(folder) / "stats.json"
        if not path.is_file():
            raise BailongError(f"{folder} is not a bench output folder (no stats.json)")
        label = label or Path(folder).resolve().parent.name
        if label in runs:
            raise BailongError(f"two runs are labelled '{label}'; name them LABEL=FOLDER")
        runs[label] = json.loads(path.read_text(encoding="utf-8"))
    return runs


def metrics(stats: dict) -> dict[str, float]:
    """The comparable numbers of one run, by row name (higher is better unless the name says otherwise)."""
    out: dict[str, float] = {}
    for key, value in stats.items():
        if key.startswith("pass_rate_"):
            out[f"gate pass rate ({key.removeprefix('pass_rate_')})"] = value
        elif key.startswith("judge_mean_"):
            out[f"judge mean ({key.removeprefix('judge_mean_')})"] = value
    for cat, entry in sorted(stats.get("by_category", {}).items()):
        out[f"judge mean: {cat}" if "judge_mean" in entry else f"gate pass rate: {cat}"] = entry.get("judge_mean", entry["pass_rate"])
    if "tmmlu" in stats:
        out["TMMLU accuracy (mean of subjects)"] = round(stats["tmmlu"]["accuracy_macro"], 4)
    if "drcd" in stats:
        out["DRCD exact match"], out["DRCD F1"] = stats["drcd"]["exact_match"], stats["drcd"]["f1"]
    if "translation" in stats:
        for direction in ("en-zh", "zh-en"):
            out[f"BLEU {direction}"] = stats["translation"][direction]["bleu"]
            out[f"chrF {direction}"] = stats["translation"][direction]["chrf"]
    for key, value in (stats.get("bpc") or {}).items():
        out[f"bits/char {key.removeprefix('bpc_')} (lower is better)"] = value
    return out


def table(runs: dict[str, dict]) -> list[str]:
    per_run = {label: metrics(s) for label, s in runs.items()}
    rows = list(dict.fromkeys(k for m in per_run.values() for k in m))
    lines = ["| metric | " + " | ".join(runs) + " |", "| --- |" + " --- |" * len(runs)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(str(per_run[label].get(row, "")) for label in runs) + " |")
    return lines


def plot(runs: dict[str, dict], path: Path) -> bool:
    """Grouped bars per category (judge mean when judged, else gate pass rate); False when no run has categories."""
    cats = sorted({c for s in runs.values() for c in s.get("by_category", {})})
    if not cats:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(cats) * len(runs)), 4))
    width = 0.8 / len(runs)
    judged = any("judge_mean" in e for s in runs.values() for e in s.get("by_category", {}).values())
    for k, (label, stats) in enumerate(runs.items()):
        entries = stats.get("by_category", {})
        values = [entries.get(c, {}).get("judge_mean" if judged else "pass_rate", 0) or 0 for c in cats]
        ax.bar([i + k * width for i in range(len(cats))], values, width, label=label)
    ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(cats))], cats, rotation=45, ha="right")
    ax.set_ylabel("judge mean (0-10)" if judged else "gate pass rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def to_html(markdown_text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return f"<!doctype html><html lang=\"zh-Hant-TW\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{style}</style></head><body>{body}</body></html>\n"


def write_comparison(specs: list[str], out_dir: Path) -> dict[str, Path]:
    runs = load_runs(specs)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# bailong bench: side by side", "", *table(runs)]
    if plot(runs, out_dir / "categories.png"):
        lines += ["", "![scores per category](categories.png)"]
    lines += ["", "Gate pass rate: share of answers with no Simplified character and in the expected language; judge means are "
              "0-10 with gated answers counted as 0. Rows a run lacks are blank."]
    text = "\n".join(lines) + "\n"
    md = write_text(out_dir / "comparison.md", text)
    html = write_text(out_dir / "comparison.html", to_html(text, "bailong bench comparison"))
    return {"markdown": md, "html": html}
