"""Vocabulary extension, side by side: Llama 2, Llama 2 + bailong's zh-TW tokens, Chinese-LLaMA-2;
and the same pipeline on a byte-level BPE base (SmolLM2).

Training text comes only from ../shared/data/corpus (statutes capped at 1M characters so they do
not drown the general-register sources); measured on DRCD dev paragraphs (zh-TW Wikipedia, never
trained on) and English literary prose.

    .venv/bin/python benchmarks/vocab_compression.py [--new-tokens 27241] [--out runs/benchmarks]

Writes <out>/vocab_compression.md and .png and prints the table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=27_241, help="tokens added to Llama 2 (Bailong: 27,241)")
    parser.add_argument("--smollm-new-tokens", type=int, default=8_000, help="tokens added to SmolLM2's byte-level BPE")
    parser.add_argument("--english-chars", type=int, default=1_000_000, help="characters of English prose to measure on")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks", help="output folder")
    args = parser.parse_args()
    if not (SHARED / "data").is_dir():
        sys.exit(f"needs ../shared/data and ../shared/fixtures beside the repository ({SHARED} is absent)")

    from bailong.corpus import CorpusConfig
    from bailong.corpus import run as corpus_run
    from bailong.models import load_tokenizer, resolve_model
    from bailong.vocab import VocabConfig, stats
    from bailong.vocab import run as vocab_run
    from bailong.vocab.sentencepiece import processor, load_proto

    work = args.out / "vocab_compression"
    data = SHARED / "data"
    corpus = corpus_run(CorpusConfig(
        out_dir=work / "corpus", heldout_fraction=0, minhash={"enabled": False},
        # Legal text is repetitive by nature: this benchmark measures vocabularies, so only length and exact dedup apply.
        filters={"min_chars": 2, "boilerplate": False, "max_dup_line_fraction": 1, "max_dup_line_char_fraction": 1,
                 "max_top_ngram_fraction": {}, "max_dup_ngram_fraction": {}},
        sources=[{"path": str(data / "corpus" / "tw_statutes_zh.txt"), "name": "statutes", "max_chars": 1_000_000},
                 {"path": str(data / "corpus" / "caf_zh_tw.jsonl"), "name": "caf"},
                 {"path": str(data / "corpus" / "moztw_cc0_sentences" / "*.txt"), "split": "line", "name": "moztw"}],
    ))
    llama2 = work / "llama2"
    llama2.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHARED / "fixtures" / "llama2-tokenizer" / "tokenizer.model", llama2 / "tokenizer.model")
    clama2 = SHARED / "fixtures" / "chinese-llama2-tokenizer"

    timings = {}
    start = time.perf_counter()
    ext = vocab_run(VocabConfig(base_model=str(llama2), corpus=corpus.artifacts["train"], out_dir=work / "llama2-zh-tw",
                                new_tokens=args.new_tokens))
    timings["llama2"] = time.perf_counter() - start
    start = time.perf_counter()
    smol = vocab_run(VocabConfig(base_model="builtin:smollm2-135m-instruct", corpus=corpus.artifacts["train"],
                                 out_dir=work / "smollm2-zh-tw", new_tokens=args.smollm_new_tokens))
    timings["smollm2"] = time.perf_counter() - start

    zh = (data / "eval" / "drcd_dev_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    en = [line for line in (data / "english" / "english_pd_combined_clean.txt").read_text(encoding="utf-8")[: args.english_chars].split("\n") if line]
    tokenizers = {"Llama 2": llama2, f"Llama 2 + bailong ({args.new_tokens:,})": work / "llama2-zh-tw" / "tokenizer",
                  "Chinese-LLaMA-2": clama2, "SmolLM2": resolve_model("builtin:smollm2-135m-instruct"),
                  f"SmolLM2 + bailong ({args.smollm_new_tokens:,})": work / "smollm2-zh-tw" / "tokenizer"}
    rows = stats.compare(tokenizers, {"DRCD zh-TW": zh, "English": en})

    # Invariants, measured on the same text.
    for name, path in tokenizers.items():
        tok = load_tokenizer(path)
        lines = zh + en[:5000]
        lossless = sum(tok.decode(tok(line, add_special_tokens=False)["input_ids"]) == line for line in lines)
        row = next(r for r in rows if r["tokenizer"] == name)
        row["lossless lines"] = f"{lossless}/{len(lines)}"
        model_file = Path(path) / "tokenizer.model"
        if model_file.exists():
            proc = processor(load_proto(model_file))
            same = sum(tok(line, add_special_tokens=False)["input_ids"] == proc.encode(line) for line in lines)
            row["HF = sentencepiece"] = f"{same}/{len(lines)}"
        else:
            row["HF = sentencepiece"] = "n/a"
    base_en = {r["tokenizer"]: r["English tokens/char"] for r in rows}
    for r in rows:
        ref = base_en["SmolLM2"] if r["tokenizer"].startswith("SmolLM2") else base_en["Llama 2"]
        r["English vs base"] = f"{100 * (r['English tokens/char'] / ref - 1):+.2f}%"
    md, png = stats.write(rows, args.out)
    target = args.out / "vocab_compression.md"
    sources = ", ".join(f"{k}: {v.get('kept', 0):,} docs" for k, v in corpus.stats["per_source"].items())
    lines = [
        "# Vocabulary compression", "",
        f"Training text: {corpus.stats['train_chars']:,} characters of ../shared/data/corpus "
        f"({sources}).",
        f"zh-TW: {sum(map(len, zh)):,} characters of DRCD dev paragraphs; English: {sum(map(len, en)):,} characters.", "",
        stats.to_markdown(rows),
        f"Llama 2 extension: {ext.stats['coverage_tokens']:,} Big5 level-1 characters, {ext.stats['learned_tokens']:,} learned, "
        f"{ext.stats['intermediate_tokens']} intermediate; {ext.stats['unreachable_new_tokens']} unreachable; "
        f"{timings['llama2']:.0f} s. SmolLM2 extension: {smol.stats['coverage_tokens']:,} coverage, {smol.stats['learned_tokens']:,} learned, "
        f"{smol.stats['intermediate_tokens']} intermediate; {timings['smollm2']:.0f} s.",
        "", f"![tokens per character]({png.name})",
    ]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    md.unlink()
    png.rename(args.out / "vocab_compression.png")
    print("\n".join(lines).replace(png.name, "vocab_compression.png"))
    print(f"\nwritten: {target}")


if __name__ == "__main__":
    main()
