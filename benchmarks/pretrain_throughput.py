"""Pretrain step throughput: our loop vs a plain transformers Trainer + PEFT script, same model and batch.

    .venv/bin/python benchmarks/pretrain_throughput.py [--steps 8] [--batch-size 4] [--block-size 256]

Model: SmolLM2-135M's shape (30 layers, hidden 576, tied embeddings) with random weights and its
vocabulary extended to 52,152 tokens (3,000 new rows, padded to 52,160), written once to a temporary
folder. Both sides: 4-bit NF4 base with double quantization (bitsandbytes), LoRA r=8 on every linear
layer, only the new embedding rows trained (PEFT trainable tokens), AdamW at the same learning rate,
the same packed blocks (each side shuffles them), no gradient checkpointing, no document masking. Each side runs in its own
process; tokens/s counts steps 2..N (the first step warms up), peak RSS is that process's.
Two more rows show our loop training the full embedding matrix instead of the new rows, and with
position ids restarting per document (no cross-document attention, as the pretrain stage does).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NEW_ROWS = 3000

sys.path.insert(0, str(Path(__file__).parent))
from _child import run_child  # noqa: E402


def build_model(folder: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from bailong.models import load_tokenizer, resolve_model

    base = resolve_model("builtin:smollm2-135m-instruct")
    config = AutoConfig.from_pretrained(base)
    tok = load_tokenizer(base)
    config.vocab_size = 52_160  # 49,152 + 3,000 new rows, padded to a multiple of 64
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    new = list(range(len(tok), len(tok) + NEW_ROWS))
    (folder / "bailong_embed.json").write_text(json.dumps({"new_token_ids": new}))


def blocks(folder: Path, n: int, block_size: int):
    """The first n packed blocks of the CAF corpus, as a flat token array (n x block_size ids)."""
    from bailong.models import load_tokenizer
    from bailong.pretrain.data import count_blocks, tokenize_corpus

    corpus = SHARED / "corpus" / "caf_zh_tw.jsonl"
    tokens = tokenize_corpus(corpus, load_tokenizer(folder), folder / "tokens")
    if count_blocks(tokens, block_size, corpus) < n:
        sys.exit(f"{corpus} has fewer than {n} blocks of {block_size} tokens")
    return tokens[: n * block_size]


def ours(folder: Path, args) -> dict:
    from bailong.pretrain.config import LoraSettings, TrainSettings
    from bailong.pretrain.data import block_batches
    from bailong.pretrain.loop import train
    from bailong.pretrain.model import load_for_training

    data = blocks(folder, args.steps * args.batch_size, args.block_size)
    model, tok, share = load_for_training(folder, LoraSettings(embeddings=args.embeddings), seed=0)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    cfg = TrainSettings(max_steps=args.steps, batch_size=args.batch_size, lr=2e-4, warmup_steps=1, log_every=1000)
    eos = tok.eos_token_id if args.document_masking else None
    history = train(model, block_batches(data, args.block_size, args.batch_size, 0, eos), cfg, desc="ours")
    seconds = history[-1]["seconds"] - history[0]["seconds"]
    return {"tokens_per_s": sum(h["tokens"] for h in history[1:]) / seconds, "trainable_share": share,
            "loss_last": history[-1]["loss"], "peak_after_load_gb": loaded}


def trainer(folder: Path, args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Trainer, TrainerCallback, TrainingArguments

    data = blocks(folder, args.steps * args.batch_size, args.block_size)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map="cpu", dtype=torch.float32)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    ids = json.loads((folder / "bailong_embed.json").read_text())["new_token_ids"]
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM", trainable_token_indices={"embed_tokens": ids}))
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    stamps = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    rows = data.reshape(-1, args.block_size).astype("int64").tolist()
    ds = Dataset.from_dict({"input_ids": rows, "labels": rows})
    targs = TrainingArguments(output_dir=str(folder / "trainer-out"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                              learning_rate=2e-4, warmup_steps=1, lr_scheduler_type="cosine", logging_steps=1000, save_strategy="no",
                              report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    Trainer(model=model, args=targs, train_dataset=ds, callbacks=[Stamp()]).train()
    tokens = (args.steps - 1) * args.batch_size * args.block_size
    return {"tokens_per_s": tokens / (stamps[-1] - stamps[0]), "peak_after_load_gb": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per side (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step")
    parser.add_argument("--block-size", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--side", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--embeddings", default="new-rows", help=argparse.SUPPRESS)
    parser.add_argument("--document-masking", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "pretrain_throughput.md", help="markdown table")
    args = parser.parse_args()
    if args.side:  # a child process: one side, result as the last line of stdout
        print(json.dumps((ours if args.side == "ours" else trainer)(args.model, args)))
        return
    if not SHARED.is_dir():
        sys.exit(f"needs ../shared/data beside the repository ({SHARED} is absent)")
    # (label, side, extra child arguments): the Trainer baseline, our default, then our variants.
    variants = [("transformers Trainer + PEFT", "trainer", []), ("bailong loop", "ours", []),
                ("bailong, full embed_tokens trained", "ours", ["--embeddings", "full"]),
                ("bailong, no cross-document attention", "ours", ["--document-masking"])]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        build_model(folder)
        for label, side, extra in variants:
            rows[label], peak = run_child([sys.executable, __file__, "--side", side, "--model", str(folder), "--steps", str(args.steps),
                                           "--batch-size", str(args.batch_size), "--block-size", str(args.block_size), *extra],
                                          env=os.environ | {"TQDM_DISABLE": "1"})
            rows[label]["peak_rss_gb"] = peak
            print(label, rows[label], flush=True)
    base = rows[variants[0][0]]
    lines = [f"# Pretrain throughput (CPU, {os.cpu_count()} cores; SmolLM2-135M shape, random weights, +{NEW_ROWS:,} rows; "
             f"NF4 + LoRA r=8 all-linear + new rows unless said; batch {args.batch_size} x {args.block_size} tokens, {args.steps} steps)",
             "", "| | tokens/s | peak RSS (GB) | speed vs Trainer | memory vs Trainer | trainable |", "| --- | --- | --- | --- | --- | --- |"]
    for label, row in rows.items():
        share = f"{row['trainable_share']:.2%}" if "trainable_share" in row else ""
        lines.append(f"| {label} | {row['tokens_per_s']:.1f} | {row['peak_rss_gb']:.2f} | x{row['tokens_per_s'] / base['tokens_per_s']:.2f} "
                     f"| x{row['peak_rss_gb'] / base['peak_rss_gb']:.2f} | {share} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
