"""preference stage: ORPO or DPO through TRL on the chat-tuned model, then the same merged export.

TRL's trainers run the loop (their losses need paired batches and, for DPO, reference log-probs);
everything around it is the pretrain stage's: QLoRA loading, our optimizer and schedule (so
``train.embedding_lr`` and the warmup + cosine shape hold), held-out bits/char (also every
``train.eval_every`` steps), the merged export,
``train.launcher`` for several processes. Checkpoints are TRL's (``checkpoints/checkpoint-<step>``,
every ``train.save_every`` steps); ``train.resume`` continues from the newest.

Writes ``adapter/``, ``model/``, ``loss.png``, ``history.jsonl`` (loss and the trainer's preference
metrics per step), ``tensorboard/`` and ``stats.json``.
"""

from __future__ import annotations

import logging
import math
import os
import time

import torch

from bailong.config import BailongError, StageResult
from bailong.io import write_json
from bailong.preference.config import PreferenceConfig
from bailong.preference.data import load_pairs
from bailong.pretrain.export import artifacts, finish_training
from bailong.pretrain.launch import launched, relaunch
from bailong.pretrain.loop import make_optimizer
from bailong.pretrain.model import compute_dtype, load_for_training
from bailong.pretrain.stage import held_out_scorer
from bailong.sft.data import set_chat_template

log = logging.getLogger(__name__)

# Trainer log keys kept in history.jsonl (besides loss and learning rate).
_METRICS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected",
            "nll_loss", "log_odds_ratio")


def _trainer_classes(method: str):
    if method == "orpo":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in trl.experimental since TRL 1.0
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOConfig, ORPOTrainer
    from trl import DPOConfig, DPOTrainer

    return DPOConfig, DPOTrainer


def _progress(stamps: dict[int, float], total: int):
    """A callback with our progress bar (loss and reward margin), noting the seconds at each logged step.

    It replaces transformers' own bar, which also prints every log dict (a dozen metrics per step).
    """
    from tqdm import tqdm
    from transformers import TrainerCallback

    start = time.perf_counter()

    class Progress(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = tqdm(desc="preference", unit=" steps", initial=state.global_step, total=total)

        def on_log(self, args, state, control, logs=None, **kwargs):
            stamps[state.global_step] = round(time.perf_counter() - start, 2)
            if self.bar is not None and logs and "loss" in logs:
                self.bar.update(state.global_step - self.bar.n)
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", margin=f"{logs.get('rewards/margins', float('nan')):.3f}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _held_out(scorer, every: int, scores: dict[int, dict], writer=None):
    """A callback scoring held-out bits/char every `every` steps on the main process (train.eval_every),
    into `scores` by step (and TensorBoard), as the pretrain and sft loops do."""
    from transformers import TrainerCallback

    from bailong.pretrain.loop import evaluation

    class HeldOut(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every or not state.is_world_process_zero:
                return
            with evaluation(model):
                scores[state.global_step] = scorer(model)
            if writer is not None:
                for key, value in scores[state.global_step].items():
                    writer.add_scalar(f"preference/{key}", value, state.global_step)
                writer.flush()

    return HeldOut()


def _history(log_history: list[dict], stamps: dict[int, float], held: dict[int, dict] | None = None) -> list[dict]:
    """Our history.jsonl rows from the trainer's log (which a resumed trainer restores from its checkpoint)."""
    rows = []
    for h in log_history:
        if "loss" in h:
            row = {"step": h["step"], "loss": round(float(h["loss"]), 4), "lr": h.get("learning_rate")}
            row |= {"seconds": stamps[h["step"]]} if h["step"] in stamps else {}
            rows.append(row | {k: round(float(h[k]), 4) for k in _METRICS if k in h} | (held or {}).get(h["step"], {}))
    return rows


def _fitting(pairs: list[tuple[str, dict]], tok, max_length: int, problems: list[str]) -> list[tuple[str, dict]]:
    """The pairs whose prompt + either answer fits `max_length`; the others are listed in `problems`.

    TRL would truncate them, and a prompt that fills the window leaves an empty answer whose
    log-probability is NaN: such a pair would poison the whole batch instead of being skipped.
    """
    kept = []
    for where, pair in pairs:
        n = max(len(tok.apply_chat_template(pair["prompt"] + pair[k], tokenize=True, return_dict=True)["input_ids"])
                for k in ("chosen", "rejected"))
        if n > max_length:
            problems.append(f"{where}: {n} tokens, longer than max_length {max_length}: dropped")
        else:
            kept.append((where, pair))
    if not kept:
        raise BailongError(f"preference: every pair is longer than max_length {max_length}")
    return kept


def run(cfg: PreferenceConfig) -> StageResult:
    if cfg.model is None:
        raise BailongError("preference: 'model' is required (the sft stage's model/)")
    pairs, problems = load_pairs(cfg.data)
    for p in problems[:20]:
        log.warning("preference: skipped %s", p)
    if not pairs:
        raise BailongError(f"preference: no valid pair in {cfg.data} ({len(problems)} skipped)")
    if cfg.train.launcher and not launched():
        return StageResult(artifacts(cfg.out_dir), relaunch("preference", cfg))
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint

    t, out = cfg.train, cfg.out_dir
    model, tok, share = load_for_training(cfg.model, cfg.lora, t.seed, PartialState().device)
    template = set_chat_template(tok)
    pairs = _fitting(pairs, tok, cfg.max_length, problems)
    config_cls, trainer_cls = _trainer_classes(cfg.method)
    args = config_cls(
        output_dir=str(out / "checkpoints"), max_steps=t.max_steps, per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, seed=t.seed, beta=cfg.beta, max_length=cfg.max_length,
        logging_steps=1, save_strategy="steps" if t.save_every else "no", save_steps=t.save_every or 1,
        save_total_limit=t.keep_checkpoints, report_to=[],
        use_cpu=not torch.cuda.is_available(), gradient_checkpointing=cfg.lora.gradient_checkpointing,
        # Autocast only when the model computes in bf16 anyway; transformers would otherwise turn bf16 on for
        # CPUs that support it, and that choice would stick to the process's accelerate state.
        bf16=compute_dtype(cfg.lora, torch.cuda.is_available()) == torch.bfloat16, fp16=False,
    )
    stamps: dict[int, float] = {}
    held: dict[int, dict] = {}
    callbacks, writer = [_progress(stamps, t.max_steps)], None
    if t.tensorboard and PartialState().is_main_process:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        writer = SummaryWriter(str(out / "tensorboard"))
        callbacks.append(TensorBoardCallback(writer))
    scorer = held_out_scorer(tok, cfg.eval_corpus, cfg.eval_chars)
    if t.eval_every and scorer is not None:
        callbacks.append(_held_out(scorer, t.eval_every, held, writer))
    rows = Dataset.from_list([pair for _, pair in pairs])
    trainer = trainer_cls(model=model, args=args, train_dataset=rows, processing_class=tok,
                          optimizers=make_optimizer(model, t), callbacks=callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    resume_from = get_last_checkpoint(str(out / "checkpoints")) if t.resume and (out / "checkpoints").is_dir() else None
    if t.resume and resume_from is None:
        log.warning("preference: resume asked, but %s holds no checkpoint: starting at step 0", out / "checkpoints")
    trainer.train(resume_from_checkpoint=resume_from)
    if not trainer.is_world_process_zero():  # the main process exports and scores
        return StageResult({}, {})

    history = _history(trainer.state.log_history, stamps, held)
    bad = next((h["step"] for h in history if not math.isfinite(h["loss"])), None)
    if bad is not None:
        raise BailongError(f"preference: the loss is not finite from step {bad} (learning rate too high?); nothing exported")
    last = history[-1]
    stats = {
        "method": cfg.method,
        "chat_template": template,
        "pairs": len(pairs),
        "skipped": len(problems),
        "skipped_examples": problems[:20],
        "final": {k: last[k] for k in _METRICS if k in last},
        **finish_training(model, tok, cfg.model, out, history, share, f"preference tuning ({cfg.method.upper()})",
                          cfg.eval_corpus, cfg.eval_chars),
    }
    write_json(out / "stats.json", stats)
    log.info("preference: %s on %d pairs, loss %.3f -> %.3f, final %s", cfg.method, len(pairs), stats["loss_first"],
             stats["loss_last"], stats["final"])
    return StageResult(artifacts(out), stats)
