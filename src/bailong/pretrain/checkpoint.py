"""Training checkpoints: everything needed to continue exactly where a killed run stopped.

A checkpoint folder ``checkpoint-<step>/`` holds the trainable tensors (safetensors), the
optimizer state (keyed by parameter name), the scheduler state and the RNG states (``torch.save``
of tensors and plain containers, loaded back with ``weights_only=True``: no pickled code), the
loss history so far, and the
fingerprint of the training setup it belongs to. It is written to a temporary folder and renamed,
so a kill mid-write leaves the previous checkpoint intact; only the newest ``keep`` survive.

Tensors are saved whole, as torch.distributed.checkpoint's full state dicts: under FSDP every
process gathers its shards (`gather`), under DeepSpeed ZeRO its optimizer partitions, so one
checkpoint format serves one process, DDP, FSDP and ZeRO, and loading splits them again.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bailong.config import BailongError
from bailong.io import atomic_path
from bailong.pretrain import zero


def gather(model, opt=None) -> tuple[dict[str, torch.Tensor], dict]:
    """(trainable tensors by name, optimizer state by parameter name), whole, on the main process's CPU.

    A tied weight is listed under each of its names (one tensor), as PEFT's save_pretrained expects.
    Under FSDP this is a collective: every process must call it (the others may get empty dicts).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
    from torch.distributed.tensor import DTensor

    tensors, whole = {}, {}
    for name, p in model.named_parameters(remove_duplicate=False):  # the same order in every process, as gathers need
        if p.requires_grad:
            if id(p) not in whole:
                whole[id(p)] = (p.full_tensor() if isinstance(p, DTensor) else p).detach().contiguous().cpu()
            tensors[name] = whole[id(p)]
    if opt is None:
        return tensors, {}
    if zero.wraps(opt):
        return tensors, zero.optimizer_state(model, opt)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return tensors, get_optimizer_state_dict(model, getattr(opt, "optimizer", opt), options=options)  # accelerate wraps it


def rng_state() -> dict:
    """This process's random state (dropout masks depend on it)."""
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def save(folder: Path, step: int, gathered: tuple[dict, dict], sched, history: list[dict], fingerprint: str, keep: int,
         rng_states: list[dict]) -> Path:
    """Write checkpoint-<step> from `gather`'s output; `rng_states` holds one entry per process."""
    target = folder / f"checkpoint-{step}"
    tensors, optim = gathered
    with atomic_path(target) as tmp:
        tmp.mkdir(parents=True)
        once = {id(t): n for n, t in reversed(tensors.items())}  # a tied weight under its first name only
        save_file({n: tensors[n] for n in once.values()}, str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optim, "scheduler": sched.state_dict(), "rng": rng_states}, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"step": step, "fingerprint": fingerprint, "history": history}))
    for old in sorted(checkpoints(folder), key=_step)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def checkpoints(folder: Path) -> list[Path]:
    return [p for p in folder.glob("checkpoint-*") if p.is_dir() and (p / "meta.json").exists() and p.name[11:].isdigit()]


def _step(path: Path) -> int:
    return int(path.name.split("-")[1])


def latest(folder: Path) -> Path | None:
    found = sorted(checkpoints(folder), key=_step) if folder.is_dir() else []
    return found[-1] if found else None


def load(path: Path, model, opt, sched, fingerprint: str, rank: int = 0, world_size: int = 1) -> tuple[int, list[dict]]:
    """Restore model rows/adapters, optimizer, scheduler and process `rank`'s RNG from `path`; return (step, history).

    Every process reads the whole tensors; under FSDP each keeps its own shards of them.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    from torch.distributed.tensor import DTensor, distribute_tensor

    meta = json.loads((path / "meta.json").read_text())
    if meta["fingerprint"] != fingerprint:
        raise BailongError(f"{path} was written by a different training setup (model, data or settings changed); "
                           "delete the checkpoints or rerun without resume")
    tensors = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in tensors]
    if missing:
        raise BailongError(f"{path} lacks trainable tensor {missing[0]}")
    with torch.no_grad():
        for name, value in tensors.items():  # checkpoint order: the same in every process
            p = params[name]
            value = value.to(p.device)
            p.copy_(distribute_tensor(value, p.device_mesh, p.placements) if isinstance(p, DTensor) else value)
    state = torch.load(path / "state.pt", weights_only=True)
    if zero.wraps(opt):
        zero.load_state(model, opt, tensors, state["optimizer"])
    else:
        set_optimizer_state_dict(model, getattr(opt, "optimizer", opt), state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
    sched.load_state_dict(state["scheduler"])
    if len(state["rng"]) != world_size:
        raise BailongError(f"{path} was written by {len(state['rng'])} processes, this run has {world_size}")
    rng = state["rng"][rank]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    py = random.getstate()
    random.setstate((py[0], tuple(rng["python"]), py[2]))
    return meta["step"], meta["history"]
