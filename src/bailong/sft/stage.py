"""sft stage: multi-turn chat fine-tuning (assistant-only loss) with the pretrain stage's machinery.

Writes ``adapter/``, ``model/`` (merged, with the chat template in the tokenizer so
``apply_chat_template`` works anywhere), ``loss.png``, ``history.jsonl`` and ``stats.json``.
"""

from __future__ import annotations

import logging

from bailong.config import BailongError, StageResult
from bailong.io import write_json
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.launch import launched, relaunch
from bailong.pretrain.loop import make_accelerator, train
from bailong.pretrain.model import load_for_training
from bailong.pretrain.stage import held_out_scorer, training_fingerprint
from bailong.sft.config import SftConfig
from bailong.sft.data import chat_batches, encode, read_dialogues, resolve_data, set_chat_template

log = logging.getLogger(__name__)


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
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed, acc.device)
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
    batches = chat_batches(examples, t.batch_size, tok.pad_token_id or 0, t.seed, acc.process_index, acc.num_processes)
    history = train(model, batches, t, desc="sft", checkpoint_dir=cfg.out_dir / "checkpoints", fingerprint=training_fingerprint(cfg),
                    evaluate=held_out_scorer(tok, cfg.eval_corpus, cfg.eval_chars),
                    log_dir=cfg.out_dir / "tensorboard" if t.tensorboard else None, accelerator=acc)
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
        "processes": acc.num_processes,
        **finish_training(model, tok, cfg.model, cfg.out_dir, history, share, "chat fine-tuning (assistant tokens)",
                          cfg.eval_corpus, cfg.eval_chars),
    }
    out = cfg.out_dir
    write_json(out / "stats.json", stats)
    log.info("sft: %d dialogues, loss %.3f -> %.3f", len(dialogues), stats["loss_first"], stats["loss_last"])
    return StageResult(artifacts(out), stats)
