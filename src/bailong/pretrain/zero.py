"""DeepSpeed ZeRO through accelerate: the pieces bailong's loop and checkpoints need on top of `prepare`.

accelerate wraps the model in DeepSpeed's engine and the optimizer in a ZeRO optimizer that keeps,
per process, fp32 master copies and AdamW states of its share of the trainable parameters (ZeRO-1/2).
Three things differ from DDP and FSDP, and live here:

- the engine owns accumulation: it reduces (and partitions) gradients every micro-batch and steps
  the optimizer at its own accumulation boundary, so it must count the same micro-batches as
  ``train.grad_accum`` (`configure`);
- the optimizer state is partitioned flat buffers, not per-parameter tensors: checkpoints assemble
  whole per-parameter states with DeepSpeed's ``safe_get_full_*`` (`optimizer_state`), in the same
  name-keyed format torch.distributed.checkpoint gives for DDP and FSDP, so one checkpoint format
  serves every launcher, and `load_state` splits them back into the partitions;
- accelerate runs DeepSpeed only on accelerators; `setup` lets CPU processes over gloo run the
  same engine, so the path is tested without a GPU.
"""

from __future__ import annotations

import os

import torch

from bailong.config import BailongError

_ADAM_STATES = ("exp_avg", "exp_avg_sq")


def setup(acc) -> None:
    """Check a DeepSpeed state (ZeRO-1/2, no DeepSpeed mixed precision), after making a multi-CPU one DeepSpeed's
    when `accelerate launch` was asked for DeepSpeed on a machine without accelerators."""
    from accelerate import PartialState
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    if acc.distributed_type == DistributedType.MULTI_CPU and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        plugin = DeepSpeedPlugin()  # reads the ACCELERATE_DEEPSPEED_* variables the launcher set
        plugin.set_mixed_precision("no")
        plugin.select(_from_accelerator_state=True)
        # Both states: accelerate copies PartialState's into AcceleratorState whenever one is created (prepare does).
        acc.state.distributed_type = PartialState().distributed_type = DistributedType.DEEPSPEED
        acc.state.deepspeed_plugins = plugin  # the Accelerator built one too, but did not keep it on a CPU
    if not active(acc):
        return
    plugin = acc.state.deepspeed_plugin
    if plugin.zero_stage not in (1, 2):
        raise BailongError(f"DeepSpeed ZeRO-{plugin.zero_stage} is not supported: use zero_stage 1 or 2 "
                           "(configs/accelerate/deepspeed-zero2.yaml), or FSDP2 (configs/accelerate/fsdp-qlora.yaml) "
                           "to shard the weights too")
    for key in ("fp16", "bf16"):
        if str(plugin.deepspeed_config.get(key, {}).get("enabled", False)).lower() == "true":
            raise BailongError(f"DeepSpeed {key} mixed precision is not supported: the model computes in "
                               "lora.compute_dtype already; set mixed_precision: 'no'")


def active(acc) -> bool:
    return acc is not None and acc.distributed_type.value == "DEEPSPEED"


def wraps(opt) -> bool:
    """True for the optimizer accelerate's prepare returns under DeepSpeed (ZeRO partitions inside)."""
    from accelerate.utils import DeepSpeedOptimizerWrapper

    return isinstance(opt, DeepSpeedOptimizerWrapper)


def configure(acc, cfg) -> None:
    """Make the engine's batch and accumulation bailong's, before `prepare` builds it.

    No gradient clipping (accelerate's 'auto' would fill in 1.0): no other launcher clips, and the
    same run must compute the same steps under each.
    """
    ds = acc.state.deepspeed_plugin.deepspeed_config
    ds.update(train_micro_batch_size_per_gpu=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
              gradient_clipping=0.0, train_batch_size=cfg.batch_size * cfg.grad_accum * acc.num_processes)
    acc.gradient_accumulation_steps = cfg.grad_accum  # accelerate compares it with the config's


def master_bytes(opt) -> int:
    """Bytes of the fp32 master copies ZeRO keeps of this process's share of the trained weights."""
    return sum(t.numel() * t.element_size() for t in opt.optimizer.single_partition_of_fp32_groups)


def _groups(opt):
    """(ZeRO optimizer, base torch optimizer, the model parameters of each param group)."""
    zero = opt.optimizer  # accelerate's wrapper around DeepSpeed's ZeRO optimizer
    return zero, zero.optimizer, zero.bit16_groups


def _link(zero) -> None:
    """Point every parameter's fragment at its slice of the AdamW states, as DeepSpeed's safe_*_optimizer_state need.

    DeepSpeed links them once, right after the first param group's first step, when the later groups (our
    embedding rows) have no states yet: those would stay unlinked. Linking again once all exist fixes that.
    """
    zero._hp_optimizer_states_linked = False
    zero._lazy_init_hp_params_optimizer_state()


def optimizer_state(model, opt) -> dict:
    """Whole AdamW states keyed by parameter name, as DCP's full optimizer state dict (a collective)."""
    from deepspeed.utils import safe_get_full_optimizer_state

    zero, base, groups = _groups(opt)
    _link(zero)
    names = {id(p): n for n, p in model.named_parameters()}
    step = torch.tensor(float(next(iter(base.state.values()))["step"]))  # one count for all; an int in CPU Adam
    state, param_groups = {}, []
    for group, params in zip(base.param_groups, groups):
        param_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": [names[id(p)] for p in params]})
        for p in params:
            state[names[id(p)]] = {"step": step.clone(),
                                   **{k: safe_get_full_optimizer_state(p, k).cpu() for k in _ADAM_STATES}}
    return {"state": state, "param_groups": param_groups}


def load_state(model, opt, tensors: dict[str, torch.Tensor], optim: dict) -> None:
    """Put checkpointed whole tensors and AdamW states into this process's ZeRO partitions."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    zero, base, groups = _groups(opt)
    # AdamW creates its states at the first step: a resumed run has not stepped yet, so create them now (over the
    # flat partitions, as DeepSpeed steps AdamW), then fill them in per parameter.
    step = next(iter(optim["state"].values()))["step"]
    for partition in zero.single_partition_of_fp32_groups:
        # torch's AdamW counts in a tensor, DeepSpeed's CPU Adam (optimizer offload) in an int
        count = step.clone() if isinstance(base, torch.optim.AdamW) else int(step)
        base.state[partition] = {"step": count, **{k: torch.zeros_like(partition) for k in _ADAM_STATES}}
    _link(zero)
    names = {id(p): n for n, p in model.named_parameters()}
    for group, params, saved in zip(base.param_groups, groups, optim["param_groups"]):
        group.update({k: v for k, v in saved.items() if k != "params"})
        for p in params:
            name = names[id(p)]
            safe_set_full_fp32_param(p, tensors[name].to(p.device, torch.float32))  # the master copy
            for key in _ADAM_STATES:
                safe_set_full_optimizer_state(p, optim["state"][name][key].to(p.device, torch.float32), key)
