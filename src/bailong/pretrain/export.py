"""What every training stage does after its loop: save, merge, plot, score. Shared by pretrain and sft."""

from __future__ import annotations

import gc
from pathlib import Path

from bailong.io import atomic_path, read_texts, write_jsonl
from bailong.metrics import bpc_zh_en, english_sample
from bailong.models import load_model
from bailong.pretrain.loop import plot_loss
from bailong.pretrain.model import merge_and_export


def finish_training(peft_model, tokenizer, base_dir: Path, out: Path, history: list[dict], share: float,
                    title: str, eval_corpus: Path | None, eval_chars: int, adapter_state: dict | None = None) -> dict:
    """Write adapter/, a merged model/, history.jsonl and loss.png under `out`; score the merged model.

    `adapter_state` holds the trained tensors when the model is sharded (FSDP): `checkpoint.gather`
    on every process, then this on the main one.

    Returns the stats every training stage reports (trainable share, first/last loss, seconds,
    held-out bits/char of the merged model).
    """
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "adapter") as folder:
        peft_model.save_pretrained(folder, state_dict=adapter_state)
    gc.collect()  # activations and optimizer state of the loop sit in reference cycles until collected
    merge_and_export(base_dir, out / "adapter", out / "model", tokenizer)
    write_jsonl(out / "history.jsonl", history)
    plot_loss(history, out / "loss.png", title)
    merged = load_model(out / "model")
    zh = read_texts(eval_corpus, eval_chars) if eval_corpus else []
    return {
        "trainable_share": round(share, 5),
        "tokens_trained": sum(h["tokens"] for h in history) if all("tokens" in h for h in history) else None,
        "loss_first": history[0]["loss"],
        "loss_last": history[-1]["loss"],
        "seconds": history[-1]["seconds"],
        **{k: history[-1][k] for k in ("weights_mb", "optimizer_mb", "peak_cuda_gb") if k in history[-1]},
        "after": bpc_zh_en(merged, tokenizer, zh, [english_sample(eval_chars)], title),
    }


def artifacts(out: Path) -> dict[str, Path]:
    return {"model": out / "model", "adapter": out / "adapter", "loss_plot": out / "loss.png", "stats": out / "stats.json"}
