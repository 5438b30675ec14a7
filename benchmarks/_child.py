"""Run a benchmark side in its own process and read that process's own peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


def run_child(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """(JSON printed on the child's last stdout line, the child's peak RSS in GB). Exits with its stderr on failure.

    os.wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the maximum over every child so far.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env or os.environ)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            sys.exit(err.read()[-3000:])
        return json.loads(out.read().strip().splitlines()[-1]), usage.ru_maxrss / 1e6  # KiB -> GB (Linux)
