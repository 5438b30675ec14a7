"""pretrain stage: (Q)LoRA continued pretraining, then a merged full-precision export.

Writes ``adapter/`` (PEFT), ``model/`` (merged; AutoModelForCausalLM loads it), ``loss.png``,
``history.jsonl``, ``tensorboard/``, ``checkpoints/`` (with train.save_every) and ``stats.json``
(trainable share, losses, held-out bits/char).
"""

from __future__ import annotations

import json
import logging

from bailong.config import BailongError, StageResult
from bailong.io import CACHE_DIR, read_texts, write_json
from bailong.metrics import bpc_zh_en, english_sample
from bailong.pretrain.checkpoint import gather
from bailong.pretrain.config import PretrainConfig
from bailong.pretrain.data import block_batches, count_blocks, tokenize_corpus
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.launch import launched, relaunch
from bailong.pretrain.loop import make_accelerator, sharded, train
from bailong.pretrain.model import load_for_training

log = logging.getLogger(__name__)


def training_fingerprint(cfg) -> str:
    """What a checkpoint must match to be resumed: inputs' content and every setting that shapes training."""
    import hashlib

    from bailong.io import content_hash

    settings = {k: v for k, v in cfg.fingerprint_config().items() if k not in ("eval_corpus", "eval_chars")}
    inputs = {k: content_hash(v) for k, v in cfg.input_paths().items() if k != "eval_corpus"}
    return hashlib.sha256(json.dumps([settings, inputs], sort_keys=True, default=str).encode()).hexdigest()[:16]


def held_out_scorer(tokenizer, eval_corpus, eval_chars: int):
    """evaluate(model) -> {'bpc_en', 'bpc_zh'} on the held-out text, for `train.eval_every`; None without eval_corpus."""
    if eval_corpus is None:
        return None
    zh, en = read_texts(eval_corpus, eval_chars), [english_sample(eval_chars)]
    return lambda model: bpc_zh_en(model, tokenizer, zh, en, "held-out")


def run(cfg: PretrainConfig) -> StageResult:
    if cfg.model is None or cfg.corpus is None:
        raise BailongError("pretrain: 'model' and 'corpus' are required")
    if cfg.train.launcher and not launched():
        return StageResult(artifacts(cfg.out_dir), relaunch("pretrain", cfg))
    acc = make_accelerator()
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed, acc.device, shard=sharded(acc))
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and cfg.block_size > max_pos:
        raise BailongError(f"pretrain: block_size {cfg.block_size} exceeds the model's max_position_embeddings {max_pos}")
    t = cfg.train
    with acc.main_process_first():  # one process tokenizes, the others read its cache
        tokens = tokenize_corpus(cfg.corpus, tok, cfg.token_cache or CACHE_DIR / "tokens")
    n_blocks = count_blocks(tokens, cfg.block_size, cfg.corpus)
    eos = None if cfg.cross_document_attention else tok.eos_token_id
    batches = block_batches(tokens, cfg.block_size, t.batch_size, t.seed, eos, acc.process_index, acc.num_processes)
    history = train(model, batches, t, desc="pretrain", checkpoint_dir=cfg.out_dir / "checkpoints",
                    fingerprint=training_fingerprint(cfg), evaluate=held_out_scorer(tok, cfg.eval_corpus, cfg.eval_chars),
                    log_dir=cfg.out_dir / "tensorboard" if t.tensorboard else None, accelerator=acc)
    adapter = gather(model)[0]  # on every process: FSDP gathers the trained shards to the main one
    if not acc.is_main_process:  # the main process exports and scores
        return StageResult({}, {})

    stats = {"corpus_tokens": len(tokens), "blocks": n_blocks, "processes": acc.num_processes, "distributed": acc.distributed_type.value,
             **finish_training(model, tok, cfg.model, cfg.out_dir, history, share, "continued pretraining",
                               cfg.eval_corpus, cfg.eval_chars, adapter)}
    out = cfg.out_dir
    write_json(out / "stats.json", stats)
    log.info("pretrain: loss %.3f -> %.3f, bits/char %s", stats["loss_first"], stats["loss_last"], stats["after"])
    return StageResult(artifacts(out), stats)
