"""The corpus stage's human-readable report: stats.md with a plot of shares and drops."""

from __future__ import annotations

from pathlib import Path

from bailong.io import write_text


def write_report(stats: dict, out: Path) -> None:
    rows = stats["per_source"]
    reasons = sorted({k for r in rows.values() for k in r if k.startswith("dropped:") and any(x.get(k) for x in rows.values())})
    total_train = stats["train_chars"] or 1
    lines = [
        "# Corpus", "",
        f"{stats['documents_read']:,} documents read, {stats['documents_kept']:,} kept "
        f"({stats['train_chars']:,} training characters, {stats['train_han_chars']:,} Han; "
        f"{stats['heldout_docs']:,} documents / {stats['heldout_chars']:,} characters held out). "
        f"{stats['converted_to_traditional']:,} converted to Traditional, {stats['boilerplate_lines_removed']:,} boilerplate "
        f"lines removed, {stats['unreadable']:,} unreadable lines or records.", "",
        "| source | read | kept | " + " | ".join(r[8:] for r in reasons) + " | sampled out | training docs | training chars | share |",
        "| --- " * (7 + len(reasons)) + "|",
    ]
    for name, r in rows.items():
        kept = r.get("heldout_docs", 0) + r.get("train_unique_docs", 0)
        cells = [name, r.get("read", 0), kept, *(r.get(k, 0) for k in reasons), r.get("sampled_out", 0), r.get("train_docs", 0),
                 r.get("train_chars", 0), f"{r.get('train_chars', 0) / total_train:.1%}"]
        lines.append("| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in cells) + " |")
    if stats["unreadable_examples"]:
        lines += ["", "Unreadable (first of them):", "", *(f"- `{p}`" for p in stats["unreadable_examples"][:10])]
    lines += ["", "![shares and drops](stats.png)", ""]
    write_text(out / "stats.md", "\n".join(lines))
    _plot(rows, reasons, out / "stats.png")


def _plot(rows: dict, reasons: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.6 * len(names) + 2.5))
    left.barh(names, [rows[n].get("train_chars", 0) for n in names], color="tab:blue")
    left.set_xlabel("training characters (after mixing)")
    start = [0] * len(names)
    for reason in ["kept", *reasons]:
        if reason == "kept":
            values = [rows[n].get("heldout_docs", 0) + rows[n].get("train_unique_docs", 0) for n in names]
        else:
            values = [rows[n].get(reason, 0) for n in names]
        right.barh(names, values, left=start, label=reason.removeprefix("dropped:"))
        start = [a + b for a, b in zip(start, values)]
    right.set_xlabel("documents read")
    right.legend(fontsize=7, loc="lower right")
    right.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
