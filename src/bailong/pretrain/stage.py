"""pretrain stage: (Q)LoRA continued pretraining, then a merged full-precision export.

Writes ``adapter/`` (PEFT), ``model/`` (merged; AutoModelForCausalLM loads it), ``loss.png``,
``history.jsonl`` and ``stats.json`` (trainable share, losses, held-out bits/char).
"""

from __future__ import annotations

import json
import logging

from bailong.config import BailongError, StageResult
from bailong.io import write_json
from bailong.pretrain.config import PretrainConfig
from bailong.pretrain.data import block_batches, pack_blocks
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.loop import train
from bailong.pretrain.model import load_for_training

log = logging.getLogger(__name__)


def training_fingerprint(cfg) -> str:
    """What a checkpoint must match to be resumed: inputs' content and every setting that shapes training."""
    import hashlib

    from bailong.io import content_hash

    settings = {k: v for k, v in cfg.fingerprint_config().items() if k not in ("eval_corpus", "eval_chars")}
    inputs = {k: content_hash(v) for k, v in cfg.input_paths().items() if k != "eval_corpus"}
    return hashlib.sha256(json.dumps([settings, inputs], sort_keys=True, default=str).encode()).hexdigest()[:16]


def run(cfg: PretrainConfig) -> StageResult:
    if cfg.model is None or cfg.corpus is None:
        raise BailongError("pretrain: 'model' and 'corpus' are required")
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and cfg.block_size > max_pos:
        raise BailongError(f"pretrain: block_size {cfg.block_size} exceeds the model's max_position_embeddings {max_pos}")
    t = cfg.train
    blocks = pack_blocks(cfg.corpus, tok, cfg.block_size, max_blocks=t.max_steps * t.batch_size * t.grad_accum)
    history = train(model, block_batches(blocks, t.batch_size, t.seed), t, desc="pretrain",
                    checkpoint_dir=cfg.out_dir / "checkpoints", fingerprint=training_fingerprint(cfg))

    stats = {"blocks": len(blocks), **finish_training(model, tok, cfg.model, cfg.out_dir, history, share, "continued pretraining",
                                                      cfg.eval_corpus, cfg.eval_chars)}
    out = cfg.out_dir
    write_json(out / "stats.json", stats)
    log.info("pretrain: loss %.3f -> %.3f, bits/char %s", stats["loss_first"], stats["loss_last"], stats["after"])
    return StageResult(artifacts(out), stats)
