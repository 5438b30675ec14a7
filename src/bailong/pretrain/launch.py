"""Several training processes: a training stage relaunches itself under torchrun or `accelerate launch`.

With ``train.launcher`` set, the stage (called by the runner or the CLI as usual) writes its
resolved config to ``out_dir/launch-config.json`` and runs

    <launcher ...> -m bailong.pretrain <stage> out_dir/launch-config.json

Every process then runs the same stage function; accelerate (in the training loop) wires them into
DDP, FSDP or DeepSpeed as the launcher's config says. The main process writes the artifacts and
stats.json, which the calling process returns as the stage's result, so recipes, manifests and
reports work unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bailong.config import BailongError
from bailong.io import write_json

log = logging.getLogger(__name__)

_ENV = "BAILONG_LAUNCHED"


def launched() -> bool:
    """True inside a process started by `relaunch` (so it trains instead of launching again)."""
    return os.environ.get(_ENV) == "1"


def relaunch(stage: str, cfg) -> dict:
    """Run `stage` with `cfg` under `cfg.train.launcher`; return the stats.json its main process wrote."""
    launcher = list(cfg.train.launcher)
    exe = shutil.which(launcher[0]) or shutil.which(launcher[0], path=str(Path(sys.executable).parent))
    if exe is None:
        raise BailongError(f"{stage}: launcher '{launcher[0]}' is not on PATH nor beside {sys.executable}")
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    config_file = write_json(out / "launch-config.json", json.loads(cfg.model_dump_json()))
    (out / "stats.json").unlink(missing_ok=True)
    cmd = [exe, *launcher[1:], "-m", "bailong.pretrain", stage, str(config_file)]
    log.info("%s: launching %s", stage, " ".join(cmd))
    rc = subprocess.run(cmd, env={**os.environ, _ENV: "1"}).returncode
    if rc != 0 or not (out / "stats.json").exists():
        raise BailongError(f"{stage}: the launched training exited with status {rc} (its output is above)")
    return json.loads((out / "stats.json").read_text())
