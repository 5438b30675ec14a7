"""sft stage: multi-turn chat fine-tuning (assistant-only loss) with the pretrain stage's machinery.

Writes ``adapter/``, ``model/`` (merged, with the chat template in the tokenizer so
``apply_chat_template`` works anywhere), ``loss.png``, ``history.jsonl`` and ``stats.json``.
"""

from __future__ import annotations

import logging

from bailong.config import BailongError, StageResult
from bailong.io import write_json
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.loop import train
from bailong.pretrain.model import load_for_training
from bailong.pretrain.stage import training_fingerprint
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
    model, tok, share = load_for_training(cfg.model, cfg.lora, cfg.train.seed)
    template = set_chat_template(tok)
    examples, truncated = [], 0
    for d in dialogues:
        ex, cut = encode(d, tok, cfg.max_length)
        truncated += cut
        examples.append(ex)
    history = train(model, chat_batches(examples, cfg.train.batch_size, tok.pad_token_id or 0, cfg.train.seed), cfg.train, desc="sft",
                    checkpoint_dir=cfg.out_dir / "checkpoints", fingerprint=training_fingerprint(cfg))

    stats = {
        "chat_template": template,
        "dialogues": len(dialogues),
        "skipped": len(problems),
        "skipped_examples": problems[:20],
        "truncated": truncated,
        "user_turns_mean": round(sum(sum(m["role"] == "user" for m in d) for d in dialogues) / len(dialogues), 2),
        **finish_training(model, tok, cfg.model, cfg.out_dir, history, share, "chat fine-tuning (assistant tokens)",
                          cfg.eval_corpus, cfg.eval_chars),
    }
    out = cfg.out_dir
    write_json(out / "stats.json", stats)
    log.info("sft: %d dialogues, loss %.3f -> %.3f", len(dialogues), stats["loss_first"], stats["loss_last"])
    return StageResult(artifacts(out), stats)
