"""The end-of-run report: a markdown page (and the same as HTML) with plots, in the run directory."""

from __future__ import annotations

from pathlib import Path

from bailong.io import write_text


def _bpc_rows(manifests: dict[str, dict]) -> list[tuple[str, dict]]:
    """(label, {bpc_zh, bpc_en}) from base through the last trained model."""
    rows = []
    s = lambda name: manifests.get(name, {}).get("stats", {})  # noqa: E731
    if "embed" in manifests:
        rows.append(("base model, base tokenizer", s("embed")["base"]))
        rows.append((f"after {s('embed')['method']} init", s("embed")["init"]))
    if "pretrain" in manifests:
        rows.append(("after continued pretraining", s("pretrain")["after"]))
    if "sft" in manifests:
        rows.append(("after chat fine-tuning", s("sft")["after"]))
    if "preference" in manifests:
        rows.append((f"after {s('preference')['method'].upper()} preference tuning", s("preference")["after"]))
    return rows


def plot_bpc(rows: list[tuple[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label.replace(", ", "\n").replace(" after ", "\n") for label, _ in rows]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.38
    for k, (key, name) in enumerate((("bpc_zh", "zh-TW held-out"), ("bpc_en", "English"))):
        values = [r.get(key, float("nan")) for _, r in rows]
        bars = ax.bar([i + (k - 0.5) * width for i in range(len(rows))], values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("bits per character (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(run_dir: Path, manifests: dict[str, dict]) -> Path:
    s = lambda name: manifests.get(name, {}).get("stats", {})  # noqa: E731
    lines = [f"# bailong run report: `{run_dir}`", ""]
    lines += ["| stage | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {n} | {m.get('status')} | {m.get('seconds', '')} |" for n, m in manifests.items()]
    if "corpus" in manifests:
        c = s("corpus")
        lines += ["", "## Corpus", "",
                  f"{c['documents_read']:,} documents read, {c['documents_kept']:,} kept "
                  f"({c['train_chars']:,} training characters, {c['train_han_chars']:,} Han; "
                  f"{c['heldout_chars']:,} held out); dropped: {c['dropped'] or 'none'}; "
                  f"converted from Simplified: {c['converted_to_traditional']}; unreadable: {c['unreadable']}."]
    if "vocab" in manifests:
        v = s("vocab")
        lines += ["", "## Vocabulary", "",
                  f"{v['base_vocab_size']:,} -> {v['vocab_size']:,} tokens ({v['new_tokens_added']:,} added, "
                  f"{v['unused_new_tokens']} never produced on the training text).", "",
                  "| text | tokens/char before | after | round trip |", "| --- | --- | --- | --- |"]
        for lang, name in (("zh", "zh-TW held-out"), ("en", "English")):
            if f"tokens_per_char_{lang}_before" in v:
                lines.append(f"| {name} | {v[f'tokens_per_char_{lang}_before']} | {v[f'tokens_per_char_{lang}_after']} | {v[f'lossless_{lang}']} lossless |")
    rows = _bpc_rows(manifests)
    if rows:
        plot_bpc(rows, run_dir / "bpc.png")
        lines += ["", "## Bits per character (held-out)", "", "| model | zh-TW | English |", "| --- | --- | --- |"]
        lines += [f"| {label} | {r.get('bpc_zh', '')} | {r.get('bpc_en', '')} |" for label, r in rows]
        lines += ["", "![bits per character](bpc.png)"]
    for stage in ("pretrain", "sft", "preference"):
        if stage in manifests:
            t = s(stage)
            final = "".join(f"; final {k} {v}" for k, v in t.get("final", {}).items() if k.startswith("rewards/"))
            lines += ["", f"## {stage}", "",
                      f"trainable share {t['trainable_share']:.2%}; loss {t['loss_first']} -> {t['loss_last']} "
                      f"in {t['seconds']} s{final}.", "", f"![{stage} loss]({stage}/loss.png)"]
    if "bench" in manifests:
        b = s("bench")
        lines += ["", "## Bench", "", f"{b['questions']} questions, decoding {b['decoding']}; gates: {b['gate']}."]
        lines += [f"- pass rate {k.removeprefix('pass_rate_')}: {v}" for k, v in b.items() if k.startswith("pass_rate_")]
        lines += [f"- judge mean {k.removeprefix('judge_mean_')}: {v}" for k, v in b.items() if k.startswith("judge_mean_")]
        if "tmmlu" in b:
            t = b["tmmlu"]
            lines += [f"- TMMLU ({t['shots']}-shot, {t['questions']} questions in {t['subjects']} subjects): accuracy "
                      f"{t['accuracy_macro']:.1%} (mean of subjects), {t['accuracy_micro']:.1%} (all questions); "
                      f"random guessing {t['random_baseline']:.0%}"]
        if "drcd" in b:
            d = b["drcd"]
            lines += [f"- DRCD-style reading comprehension ({d['questions']} questions): exact match {d['exact_match']}, "
                      f"F1 {d['f1']} (characters, punctuation ignored)"]
        if "translation" in b:
            t = b["translation"]
            lines += [f"- translation ({t['pairs']} pairs each way): EN->zh-TW BLEU {t['en-zh']['bleu']} / chrF {t['en-zh']['chrf']} "
                      f"({t['en-zh']['outputs_with_simplified']} outputs with Simplified characters); zh-TW->EN BLEU "
                      f"{t['zh-en']['bleu']} / chrF {t['zh-en']['chrf']}"]
        if "judge_status" in b:
            lines += [f"- judge calls by status: {b['judge_status']}"]
            lines += [f"  - {p}" for p in b.get("judge_problems", [])]
        if b.get("by_category"):
            judged = any("judge_mean" in e for e in b["by_category"].values())
            lines += ["", "| category | questions | gate pass rate |" + (" judge mean |" if judged else ""),
                      "| --- | --- | --- |" + (" --- |" if judged else "")]
            lines += [f"| {c} | {e['questions']} | {e['pass_rate']} |" + (f" {e.get('judge_mean', '')} |" if judged else "")
                      for c, e in b["by_category"].items()]
        if "comparison" in b:  # the bench stage's side-by-side table, its plot path made relative to the run directory
            path = Path(b["comparison"]["markdown"])
            folder = path.parent.relative_to(run_dir) if path.parent.is_relative_to(run_dir) else path.parent
            table = path.read_text(encoding="utf-8").split("\n", 1)[1].replace("](categories.png)", f"]({folder}/categories.png)")
            lines += ["", "### Side by side", table.rstrip()]
        lines += ["", "### Sample generations", ""]
        for sample in b["samples"]:
            q = sample["question"].replace("\n", " ")
            a = sample["answer"].replace("\n", " ") or "(empty)"
            lines += [f"**Q{sample['question_id']}** {q}", "", f"> {a}", "", f"gate: {sample['gate'] or 'pass'}", ""]
    text = "\n".join(lines) + "\n"
    from bailong.bench.compare import to_html

    write_text(run_dir / "report.html", to_html(text, f"bailong run report: {run_dir}"))
    return write_text(run_dir / "report.md", text)
