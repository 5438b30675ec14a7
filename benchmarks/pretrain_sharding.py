"""Two training processes, replicated (DDP) vs sharded (FSDP2, DeepSpeed ZeRO-2): memory held per process, tokens/s,
same losses.

    .venv/bin/python benchmarks/pretrain_sharding.py [--steps 6] [--batch-size 2] [--block-size 256]

Model: as benchmarks/pretrain_throughput.py (SmolLM2-135M's shape, random weights, +3,000 rows),
QLoRA (NF4, LoRA r=8 on all linear layers), trained on the CAF corpus by the pretrain stage itself,
once with each launcher: `torchrun --nproc_per_node 2` (DDP over gloo), `accelerate launch
--config_file configs/accelerate/fsdp-qlora.yaml --num_processes 2` (FSDP2 over gloo) and the same with
configs/accelerate/deepspeed-zero2.yaml (ZeRO-2 over gloo; left out when DeepSpeed is not installed).
Every row is run for the new-rows and the full-embedding mode. weights/optimizer MB are what the main
process holds after training (frozen 4-bit weights included; under FSDP only its shards; under ZeRO its
partitions of the AdamW states and fp32 master weights); tokens/s counts all steps of both processes.
On a GPU the stage also reports peak CUDA memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))
from pretrain_throughput import build_model  # noqa: E402

LAUNCHERS = {
    "DDP": ["torchrun", "--standalone", "--nproc_per_node", "2"],
    "FSDP2": ["accelerate", "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "fsdp-qlora.yaml"),
              "--num_processes", "2"],
    "ZeRO-2": ["accelerate", "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "deepspeed-zero2.yaml"),
               "--num_processes", "2"],
}
if importlib.util.find_spec("deepspeed") is None:
    del LAUNCHERS["ZeRO-2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per process per step")
    parser.add_argument("--block-size", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "pretrain_sharding.md", help="markdown table")
    args = parser.parse_args()
    if not (SHARED / "corpus" / "caf_zh_tw.jsonl").exists():
        sys.exit(f"needs ../shared/data beside the repository ({SHARED} is absent)")
    from bailong.pretrain import PretrainConfig, run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        build_model(folder)
        for embeddings in ("new-rows", "full"):
            for name, launcher in LAUNCHERS.items():
                stats = run(PretrainConfig(
                    model=folder, corpus=SHARED / "corpus" / "caf_zh_tw.jsonl", out_dir=Path(tmp) / f"{name}-{embeddings}",
                    block_size=args.block_size, token_cache=Path(tmp) / "tokens",
                    lora={"embeddings": embeddings, "dropout": 0.0},
                    train={"max_steps": args.steps, "batch_size": args.batch_size, "warmup_steps": 1, "tensorboard": False,
                           "launcher": launcher})).stats
                history = [json.loads(line) for line in (Path(tmp) / f"{name}-{embeddings}" / "history.jsonl").read_text().splitlines()]
                rows.append({"embeddings": embeddings, "run": name, "trainable": f"{100 * stats['trainable_share']:.2f}%",
                             "weights_mb": stats["weights_mb"], "optimizer_mb": stats["optimizer_mb"],
                             "tokens_s": round(stats["tokens_trained"] / stats["seconds"], 1),
                             "losses": [h["loss"] for h in history]})
                print(rows[-1], flush=True)
    lines = ["| embeddings | run | trainable | weights MB / process | optimizer MB / process | tokens/s | memory vs DDP | same losses |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    n = len(LAUNCHERS)
    for first in range(0, len(rows), n):
        ddp = rows[first]
        for r in rows[first:first + n]:
            ratio = "" if r is ddp else (f"x{(r['weights_mb'] + r['optimizer_mb']) / (ddp['weights_mb'] + ddp['optimizer_mb']):.2f}")
            same = "" if r is ddp else str(all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(ddp["losses"], r["losses"])))
            lines.append(f"| {r['embeddings']} | {r['run']} | {r['trainable']} | {r['weights_mb']:.1f} | {r['optimizer_mb']:.1f} | "
                         f"{r['tokens_s']} | {ratio} | {same} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
