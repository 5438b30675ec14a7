"""The training loop, written out: AdamW, warmup + cosine, gradient accumulation, accelerate for several processes. Shared with sft."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from accelerate.utils import gather_object
from tqdm import tqdm

from bailong.config import BailongError
from bailong.pretrain import checkpoint, zero
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


def make_accelerator():
    """The process's Accelerator: one CPU/GPU process, or one of many under torchrun/accelerate launch (DDP, FSDP2 or
    DeepSpeed ZeRO-1/2)."""
    import os

    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    # No autocast: the model computes in lora.compute_dtype. Saying so makes accelerate refuse a process state
    # another trainer left in bf16, instead of silently autocasting our steps.
    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    if acc.distributed_type == DistributedType.MULTI_CPU and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        # accelerate only shards on accelerators, but torch's FSDP2 runs on CPU processes over gloo too: a laptop (and
        # CI) then runs the same sharded path as `accelerate launch --config_file configs/accelerate/fsdp-qlora.yaml` on GPUs.
        acc.state.distributed_type = PartialState().distributed_type = DistributedType.FSDP  # as accelerate keeps both
        acc.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # read from the FSDP_* variables the launcher set
    zero.setup(acc)  # the same for DeepSpeed, and its checks
    if acc.distributed_type == DistributedType.FSDP and not acc.is_fsdp2:
        raise BailongError("FSDP1 is not supported: set fsdp_version: 2 in the accelerate config "
                           "(configs/accelerate/fsdp-qlora.yaml)")
    if acc.distributed_type.value == "MEGATRON_LM":
        raise BailongError("MEGATRON_LM is not supported: launch with configs/accelerate/ddp.yaml, fsdp-qlora.yaml "
                           "or deepspeed-zero2.yaml")
    return acc


def sharded(acc) -> bool:
    """True when parameters are sharded across processes (FSDP): forwards and state gathering then need all of them."""
    return acc is not None and acc.distributed_type.value == "FSDP"


def shard(model, acc) -> None:
    """Shard the model in place with FSDP2 (torch's fully_shard), as the accelerate config says.

    One FSDP unit per decoder layer (the model's _no_split_modules, or the config's
    fsdp_transformer_layer_cls_to_wrap), one for the input embeddings and one, kept gathered through
    the backward, for the output head, then the root; tied embeddings share one unit. Not
    accelerate's prepare: it reads `.weight` of the embedding modules, which PEFT's trainable-token
    wrappers compute from the shards (an error), and takes tied embeddings behind two wrappers for
    untied ones.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    plugin = acc.state.fsdp_plugin
    if plugin.activation_checkpointing:
        raise BailongError("fsdp_activation_checkpointing is not supported: set it to false and use "
                           "lora.gradient_checkpointing: true")
    kwargs = {"offload_policy": plugin.cpu_offload, "mp_policy": plugin.mixed_precision_policy or MixedPrecisionPolicy()}
    names = set(plugin.transformer_cls_names_to_wrap or getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise BailongError(f"FSDP: no decoder layer of class {sorted(names) or '(none given)'} in the model; set "
                           "fsdp_transformer_layer_cls_to_wrap in the accelerate config")
    for layer in layers:
        fully_shard(layer, reshard_after_forward=plugin.reshard_after_forward, **kwargs)
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    tied = outputs is not None and bool({id(p) for p in inputs.parameters()} & {id(p) for p in outputs.parameters()})
    if not tied:
        fully_shard(inputs, reshard_after_forward=plugin.reshard_after_forward, **kwargs)
    if outputs is not None:  # used last in the forward and first in the backward: no point freeing it in between
        fully_shard([inputs, outputs] if tied else outputs, reshard_after_forward=False, **kwargs)
    fully_shard(model, **kwargs)


def make_optimizer(model, cfg: TrainSettings):
    """(AdamW, warmup + cosine LambdaLR) over the trainable parameters, embeddings at `cfg.embedding_lr`."""
    embedding, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (embedding if any(m in name for m in _EMBEDDING_MARKERS) else other).append(p)
    groups = [{"params": other, "lr": cfg.lr}]
    if embedding:
        groups.append({"params": embedding, "lr": cfg.embedding_lr or cfg.lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, cfg.warmup_steps, cfg.max_steps))


def train(model, batches: Iterator[dict], cfg: TrainSettings, desc: str, checkpoint_dir: Path | None = None,
          fingerprint: str = "", evaluate: Callable | None = None, log_dir: Path | None = None,
          accelerator=None) -> list[dict]:
    """Run `cfg.max_steps` optimizer steps over `batches` (this process's micro-batches); return the log.

    Each log entry has step, loss, lr, tokens (summed over processes) and seconds, plus the result of
    `evaluate(model)` every `cfg.eval_every` steps (run on the main process). With `checkpoint_dir`,
    a checkpoint is written every `cfg.save_every` steps and `cfg.resume` continues from the newest
    one: the batches already consumed are skipped, so the data order is the uninterrupted run's.
    Under several processes (DDP, FSDP2 or DeepSpeed ZeRO through accelerate) gradients are averaged
    across them, and synchronized only on the last micro-batch of each step (ZeRO-2 reduces them into
    partitions every micro-batch, as DeepSpeed does).
    """
    acc = accelerator or make_accelerator()
    inner = model
    if sharded(acc):  # in place, before the optimizer sees the parameters, as FSDP2 expects
        shard(model, acc)
    opt, sched = make_optimizer(model, cfg)
    if zero.active(acc):
        zero.configure(acc, cfg)
    if not sharded(acc):  # accelerate's prepare would wrap a sharded model again, its own way (see `shard`)
        model, opt = acc.prepare(model, opt)
    # The scheduler stays outside accelerate: ours counts optimizer steps, accelerate's would step once per process.
    model.train()
    first, history = 0, []
    if cfg.resume and checkpoint_dir is not None:
        found = checkpoint.latest(checkpoint_dir)
        if found is None:
            log.warning("%s: resume asked, but %s holds no checkpoint: starting at step 0", desc, checkpoint_dir)
        else:
            first, history = checkpoint.load(found, inner, opt, sched, fingerprint, acc.process_index, acc.num_processes)
            for _ in range(first * cfg.grad_accum):
                next(batches)
            log.info("%s: resumed from %s", desc, found)
    writer = _tensorboard(log_dir, first) if log_dir is not None and acc.is_main_process else None
    start = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    bar = tqdm(range(first, cfg.max_steps), desc=desc, unit=" steps", initial=first, total=cfg.max_steps,
               disable=not acc.is_local_main_process)
    for step in bar:
        loss_sum, tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            batch = {k: v.to(acc.device) for k, v in next(batches).items()}
            # Gradients are reduced on the last micro-batch only; DeepSpeed's engine counts micro-batches itself.
            last = micro == cfg.grad_accum - 1 or zero.active(acc)
            with contextlib.nullcontext() if last else acc.no_sync(model):
                loss = model(**batch, use_cache=False).loss / cfg.grad_accum  # no KV cache in training
                if zero.active(acc):  # the engine's idiom: step() after every backward, it updates at its boundary
                    model.backward(loss, scale_wrt_gas=False)
                    model.step()
                else:
                    acc.backward(loss)
            loss_sum += loss.item()
            tokens += int((batch["labels"] != -100).sum())
            # Drop the graph now: autograd Functions that keep tensors on ctx (bitsandbytes' 4-bit matmul)
            # would otherwise hold this micro-batch's activations through the next forward (measured: +1.4 GB).
            del loss
        opt.step()  # under DeepSpeed a no-op: the engine stepped
        sched.step()
        opt.zero_grad(set_to_none=True)
        if not math.isfinite(loss_sum):
            raise BailongError(f"{desc}: the loss is not finite at step {step + 1} (learning rate too high?); "
                               "the last checkpoint, if any, is intact")
        if acc.num_processes > 1:
            total = acc.reduce(torch.tensor([loss_sum, tokens], dtype=torch.float64, device=acc.device), "sum")
            loss_sum, tokens = total[0].item() / acc.num_processes, int(total[1].item())
        entry = {"step": step + 1, "loss": round(loss_sum, 4), "lr": sched.get_last_lr()[0], "tokens": tokens,
                 "seconds": round(time.perf_counter() - start, 2)}
        if evaluate is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            if acc.is_main_process or sharded(acc):  # a sharded forward needs every process
                with evaluation(inner):
                    scores = evaluate(inner)
                if acc.is_main_process:
                    entry.update(scores)
            acc.wait_for_everyone()
        if step + 1 == cfg.max_steps:
            entry.update(memory(model, opt))
        history.append(entry)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        if writer is not None:
            for key, value in entry.items():
                if key not in ("step", "seconds"):
                    writer.add_scalar(f"{desc}/{key}", value, step + 1)
            writer.flush()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            log.info("%s step %d/%d loss %.4f", desc, step + 1, cfg.max_steps, loss_sum)
        if checkpoint_dir is not None and cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.max_steps:
            rng = gather_object([checkpoint.rng_state()]) if acc.num_processes > 1 else [checkpoint.rng_state()]
            state = checkpoint.gather(inner, opt)  # every process: FSDP gathers shards
            if acc.is_main_process:
                checkpoint.save(checkpoint_dir, step + 1, state, sched, history, fingerprint, cfg.keep_checkpoints, rng)
            del state
            acc.wait_for_everyone()
    if writer is not None:
        writer.close()
    return history


def memory(model, opt) -> dict:
    """What this process holds for training: weights (frozen 4-bit ones included) and optimizer states in MB (its
    shards only under FSDP; under DeepSpeed ZeRO its partitions of the AdamW states and fp32 master weights); plus
    the peak CUDA memory in GB on a GPU."""
    from torch.distributed.tensor import DTensor

    def size(t) -> int:
        t = t.to_local() if isinstance(t, DTensor) else t
        return t.numel() * t.element_size()

    states = getattr(opt, "optimizer", opt).state.values()
    optimizer = sum(size(v) for s in states for v in s.values() if torch.is_tensor(v))
    if zero.wraps(opt):  # its fp32 master weights are the optimizer's, not the model's
        optimizer += zero.master_bytes(opt)
    found = {"weights_mb": round(sum(size(p) for p in model.parameters()) / 2**20, 3),
             "optimizer_mb": round(optimizer / 2**20, 3)}
    if torch.cuda.is_available():
        found["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return found


@contextlib.contextmanager
def evaluation(model):
    """Eval mode for a mid-training score, then back to training exactly as before.

    bitsandbytes repacks 4-bit weights for its AVX512-BF16 CPU kernel on the first eval-mode forward
    and keeps them so; training forwards then run a kernel with no backward, and gradients to earlier
    layers silently vanish. The repacking is switched off while we score.
    """
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        Linear4bit = ()
    flagged = [m for m in model.modules() if isinstance(m, Linear4bit) and getattr(m, "support_avx512bf16_for_cpu", False)]
    for m in flagged:
        m.support_avx512bf16_for_cpu = False
    model.eval()  # no dropout
    try:
        yield
    finally:
        for m in flagged:
            m.support_avx512bf16_for_cpu = True
        model.train()


def _tensorboard(log_dir: Path, first_step: int):
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a killed run logged after its last checkpoint, so a resumed curve has no doubles.
    return SummaryWriter(str(log_dir), purge_step=first_step + 1 if first_step else None)


def plot_loss(history: list[dict], path, title: str) -> None:
    """Training loss per step, with held-out zh bits/char on a second axis when train.eval_every logged it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label="training loss")
    ax.set(xlabel="step", ylabel="training loss (nats/token)", title=title)
    ax.grid(alpha=0.3)
    scored = [h for h in history if "bpc_zh" in h]
    if scored:
        right = ax.twinx()
        right.plot([h["step"] for h in scored], [h["bpc_zh"] for h in scored], color="tab:red", marker="o",
                   label="held-out zh bits/char")
        right.set_ylabel("held-out zh bits/char", color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
