"""The training loop, written out: AdamW, warmup + cosine, gradient accumulation. Shared with sft."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from bailong.pretrain import checkpoint
from bailong.pretrain.config import TrainSettings

log = logging.getLogger(__name__)

# Parameter names of trained embedding rows / matrices (PEFT trainable tokens or modules_to_save).
_EMBEDDING_MARKERS = ("token_adapter", "embed_tokens", "lm_head")


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """LR multiplier: linear 0->1 over `warmup` steps, then cosine 1->0.1 until `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(model, batches: Iterator[dict], cfg: TrainSettings, desc: str, checkpoint_dir: Path | None = None,
          fingerprint: str = "") -> list[dict]:
    """Run `cfg.max_steps` optimizer steps over `batches`; return the log (step, loss, lr, tokens, seconds).

    With `checkpoint_dir`, a checkpoint is written every `cfg.save_every` steps, and `cfg.resume`
    continues from the newest one: the batches already consumed are skipped, so the run sees the
    data in the same order as an uninterrupted one.
    """
    device = next(p for p in model.parameters() if p.requires_grad).device
    embedding, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (embedding if any(m in name for m in _EMBEDDING_MARKERS) else other).append(p)
    groups = [{"params": other, "lr": cfg.lr}]
    if embedding:
        groups.append({"params": embedding, "lr": cfg.embedding_lr or cfg.lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, cfg.warmup_steps, cfg.max_steps))
    model.train()
    first, history = 0, []
    if cfg.resume and checkpoint_dir is not None:
        found = checkpoint.latest(checkpoint_dir)
        if found is None:
            log.warning("%s: resume asked, but %s holds no checkpoint: starting at step 0", desc, checkpoint_dir)
        else:
            first, history = checkpoint.load(found, model, opt, sched, fingerprint)
            for _ in range(first * cfg.grad_accum):
                next(batches)
            log.info("%s: resumed from %s", desc, found)
    start = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    bar = tqdm(range(first, cfg.max_steps), desc=desc, unit=" steps", initial=first, total=cfg.max_steps)
    for step in bar:
        loss_sum, tokens = 0.0, 0
        for _ in range(cfg.grad_accum):
            batch = {k: v.to(device) for k, v in next(batches).items()}
            loss = model(**batch, use_cache=False).loss / cfg.grad_accum  # no KV cache in training
            loss.backward()
            loss_sum += loss.item()
            tokens += int((batch["labels"] != -100).sum())
            # Drop the graph now: autograd Functions that keep tensors on ctx (bitsandbytes' 4-bit matmul)
            # would otherwise hold this micro-batch's activations through the next forward (measured: +1.4 GB).
            del loss
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        entry = {"step": step + 1, "loss": round(loss_sum, 4), "lr": sched.get_last_lr()[0], "tokens": tokens,
                 "seconds": round(time.perf_counter() - start, 2)}
        history.append(entry)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            log.info("%s step %d/%d loss %.4f", desc, step + 1, cfg.max_steps, loss_sum)
        if checkpoint_dir is not None and cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.max_steps:
            checkpoint.save(checkpoint_dir, step + 1, model, opt, sched, history, fingerprint, cfg.keep_checkpoints)
    return history


def plot_loss(history: list[dict], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".")
    ax.set(xlabel="step", ylabel="training loss (nats/token)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
