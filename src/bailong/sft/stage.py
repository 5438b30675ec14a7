"""sft stage: multi-turn chat fine-tuning (assistant-only loss) with the pretrain stage's machinery.

Writes ``adapter/``, ``model/`` (merged, with the chat template in the tokenizer so
``apply_chat_template`` works anywhere), ``loss.png``, ``history.jsonl`` and ``stats.json``.
"""

from __future__ import annotations

import logging
import random

from bailong.config import BailongError, StageResult
from bailong.io import write_json
from bailong.pretrain.checkpoint import gather
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.launch import launched, relaunch
from bailong.pretrain.loop import evaluation, make_accelerator, sharded, train
from bailong.pretrain.model import load_for_training
from bailong.pretrain.stage import held_out_scorer, training_fingerprint
from bailong.sft.config import SftConfig
from bailong.sft.data import (assistant_loss, chat_batches, encode, pack_dialogues, read_dialogues, resolve_data,
                              set_chat_template)

log = logging.getLogger(__name__)


def split_held_out(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held out): a share of the examples drawn with `seed`, at least one when fraction > 0 and there are two."""
    k = min(len(examples) - 1, max(1, round(fraction * len(examples)))) if fraction > 0 else 0
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:k])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def run(cfg: SftConfig) -> StageResult:
    if cfg.model is None:
        raise BailongError("sft: 'model' is required (the pretrain stage's model/)")
    path = resolve_data(cfg.data)
    dialogues, problems = read_dialogues(path)
    for p in problems[:20]:
        log.warning("sft: skipped %s", p)
    if not dialogues:
        raise BailongError(f"sft: no valid dialogue in {path} ({len(problems)} skipped)")
    if cfg.train.launcher and not launched():
        return StageResult(artifacts(cfg.out_dir), relaunch("sft", cfg))
    acc = make_accelerator()
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed, acc.device, shard=sharded(acc))
    template = set_chat_template(tok)
    examples, lengths, truncated = [], [], []
    for where, dialogue in dialogues:
        ex, length = encode(dialogue, tok, cfg.max_length)
        lengths.append(length)
        if length > cfg.max_length and cfg.too_long == "drop":
            problems.append(f"{where}: {length} tokens, longer than max_length {cfg.max_length}: dropped")
            continue
        if length > cfg.max_length:
            truncated.append(f"{where}: {length} tokens, truncated to max_length {cfg.max_length}")
        examples.append(ex)
    for p in truncated[:20]:
        log.warning("sft: %s", p)
    if not examples:
        raise BailongError(f"sft: every dialogue in {path} is longer than max_length {cfg.max_length}")
    t = cfg.train
    train_set, held_out = split_held_out(examples, cfg.eval_fraction, t.seed)
    rows = pack_dialogues(train_set, cfg.max_length) if cfg.packing else train_set
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    scorer = held_out_scorer(tok, cfg.eval_corpus, cfg.eval_chars)

    def evaluate(m) -> dict:
        return {**(scorer(m) if scorer else {}), **({"eval_loss": assistant_loss(m, held_out, pad)} if held_out else {})}

    with evaluation(model):
        eval_before = assistant_loss(model, held_out, pad) if held_out else None
    batches = chat_batches(rows, t.batch_size, pad, t.seed, acc.process_index, acc.num_processes)
    history = train(model, batches, t, desc="sft", checkpoint_dir=cfg.out_dir / "checkpoints", fingerprint=training_fingerprint(cfg),
                    evaluate=evaluate, log_dir=cfg.out_dir / "tensorboard" if t.tensorboard else None, accelerator=acc)
    eval_after = None
    if held_out and (acc.is_main_process or sharded(acc)):  # a sharded forward needs every process
        with evaluation(model):
            eval_after = assistant_loss(model, held_out, pad)
    adapter = gather(model)[0]  # on every process: FSDP gathers the trained shards to the main one
    if not acc.is_main_process:  # the main process exports and scores
        return StageResult({}, {})

    stats = {
        "chat_template": template,
        "dialogues": len(examples),
        "skipped": len(problems),
        "skipped_examples": problems[:20],
        "truncated": len(truncated),
        "truncated_examples": truncated[:20],
        "user_turns_mean": round(sum(sum(m["role"] == "user" for m in d) for _, d in dialogues) / len(dialogues), 2),
        "tokens_mean": round(sum(lengths) / len(lengths), 1),
        "tokens_max": max(lengths),
        "processes": acc.num_processes, "distributed": acc.distributed_type.value,
        "held_out_dialogues": len(held_out),
        "eval_loss_before": eval_before,
        "eval_loss_after": eval_after,
        "rows": len(rows),
        **finish_training(model, tok, cfg.model, cfg.out_dir, history, share, "chat fine-tuning (assistant tokens)",
                          cfg.eval_corpus, cfg.eval_chars, adapter),
    }
    out = cfg.out_dir
    write_json(out / "stats.json", stats)
    log.info("sft: %d dialogues, loss %.3f -> %.3f", len(dialogues), stats["loss_first"], stats["loss_last"])
    return StageResult(artifacts(out), stats)
