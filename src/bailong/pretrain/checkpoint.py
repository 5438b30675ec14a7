"""Training checkpoints: everything needed to continue exactly where a killed run stopped.

A checkpoint folder ``checkpoint-<step>/`` holds the trainable tensors (safetensors), the
optimizer and scheduler state and the RNG states (``torch.save`` of tensors and plain containers,
loaded back with ``weights_only=True``: no pickled code), the loss history so far, and the
fingerprint of the training setup it belongs to. It is written to a temporary folder and renamed,
so a kill mid-write leaves the previous checkpoint intact; only the newest ``keep`` survive.
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


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    """This process's random state (dropout masks depend on it)."""
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def save(folder: Path, step: int, model, opt, sched, history: list[dict], fingerprint: str, keep: int,
         rng_states: list[dict]) -> Path:
    """Write checkpoint-<step>; `rng_states` holds one entry per process (the optimizer state is replicated)."""
    target = folder / f"checkpoint-{step}"
    with atomic_path(target) as tmp:
        tmp.mkdir(parents=True)
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_states}, tmp / "state.pt")
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
    """Restore model rows/adapters, optimizer, scheduler and process `rank`'s RNG from `path`; return (step, history)."""
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
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device))
    state = torch.load(path / "state.pt", weights_only=True)
    opt.load_state_dict(state["optimizer"])
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
