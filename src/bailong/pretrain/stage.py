"""pretrain stage: (Q)LoRA continued pretraining, then a merged full-precision export.

Writes ``adapter/`` (PEFT), ``model/`` (merged; AutoModelForCausalLM loads it), ``loss.png``,
``history.jsonl`` and ``stats.json`` (trainable share, losses, held-out bits/char).
"""

from __future__ import annotations

import logging

from bailong.config import BailongError, StageResult
from bailong.io import atomic_path, read_texts, write_json, write_jsonl
from bailong.metrics import bpc_zh_en, english_sample
from bailong.models import load_model
from bailong.pretrain.config import PretrainConfig
from bailong.pretrain.data import block_batches, pack_blocks
from bailong.pretrain.loop import plot_loss, train
from bailong.pretrain.model import load_for_training, merge_and_export

log = logging.getLogger(__name__)


def run(cfg: PretrainConfig) -> StageResult:
    if cfg.model is None or cfg.corpus is None:
        raise BailongError("pretrain: 'model' and 'corpus' are required")
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and cfg.block_size > max_pos:
        raise BailongError(f"pretrain: block_size {cfg.block_size} exceeds the model's max_position_embeddings {max_pos}")
    t = cfg.train
    blocks = pack_blocks(cfg.corpus, tok, cfg.block_size, max_blocks=t.max_steps * t.batch_size * t.grad_accum)
    history = train(model, block_batches(blocks, t.batch_size, t.seed), t, desc="pretrain")

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "adapter") as folder:
        model.save_pretrained(folder)
    del model
    merge_and_export(cfg.model, out / "adapter", out / "model", tok)
    write_jsonl(out / "history.jsonl", history)
    plot_loss(history, out / "loss.png", "continued pretraining")

    merged = load_model(out / "model")
    zh = read_texts(cfg.eval_corpus, cfg.eval_chars) if cfg.eval_corpus else []
    stats = {
        "trainable_share": round(share, 5),
        "blocks": len(blocks),
        "tokens_trained": sum(h["tokens"] for h in history),
        "loss_first": history[0]["loss"],
        "loss_last": history[-1]["loss"],
        "seconds": history[-1]["seconds"],
        "after": bpc_zh_en(merged, tok, zh, [english_sample(cfg.eval_chars)], "pretrained"),
    }
    write_json(out / "stats.json", stats)
    log.info("pretrain: loss %.3f -> %.3f, bits/char %s", stats["loss_first"], stats["loss_last"], stats["after"])
    return StageResult({"model": out / "model", "adapter": out / "adapter", "loss_plot": out / "loss.png", "stats": out / "stats.json"}, stats)
