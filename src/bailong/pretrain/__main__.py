"""Entry point of each process `train.launcher` starts: ``python -m bailong.pretrain STAGE CONFIG.json``.

See bailong.pretrain.launch. Only the main process logs at INFO, so a run's log is not doubled.
"""

import logging
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from bailong.cli import _setup_logging
    from bailong.runner import STAGES

    if len(argv) != 2 or argv[0] not in STAGES:
        raise SystemExit("usage: python -m bailong.pretrain STAGE CONFIG.json (started by train.launcher)")
    _setup_logging(verbose=False)
    if os.environ.get("RANK", "0") != "0":
        logging.getLogger().setLevel(logging.WARNING)
    stage = STAGES[argv[0]]
    stage.run(stage.config.model_validate_json(Path(argv[1]).read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
