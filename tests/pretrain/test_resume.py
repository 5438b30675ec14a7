import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bailong.config import BailongError
from bailong.pretrain import PretrainConfig, run

CHILD = "import json, sys; from bailong.pretrain import PretrainConfig, run; run(PretrainConfig(**json.loads(sys.argv[1])))"


def _cfg(model, corpus, out, **train) -> dict:
    return {"model": str(model), "corpus": str(corpus), "out_dir": str(out), "block_size": 32, "eval_chars": 100,
            "train": {"max_steps": 40, "batch_size": 2, "grad_accum": 2, "lr": 1e-2, "warmup_steps": 2, "save_every": 2, **train}}


def _losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "history.jsonl").read_text().splitlines()]


def test_kill_9_then_resume_gives_the_uninterrupted_losses(tiny_embedded, zh_corpus, tmp_path):
    run(PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path / "a")))
    # The same run in another process, killed with SIGKILL once its fourth-step checkpoint exists.
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(_cfg(tiny_embedded, zh_corpus, tmp_path / "b"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "b" / "checkpoints" / "checkpoint-4" / "meta.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b" / "history.jsonl").exists()
    kept = sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("checkpoint-*"))
    assert 1 <= len(kept) <= 2  # keep_checkpoints: 2
    run(PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path / "b", resume=True)))
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")


def test_resume_refuses_a_checkpoint_of_another_setup(tiny_embedded, zh_corpus, tmp_path):
    run(PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path, max_steps=3)))
    with pytest.raises(BailongError, match="different training setup"):
        run(PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path, max_steps=3, lr=5e-3, resume=True)))


def test_checkpoint_settings_do_not_change_the_stage_fingerprint(tiny_embedded, zh_corpus, tmp_path):
    from bailong.runner import _fingerprint

    plain = PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path))
    resumed = PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path, resume=True, save_every=10, log_every=1))
    assert _fingerprint("pretrain", plain, {})[0] == _fingerprint("pretrain", resumed, {})[0]
    other = PretrainConfig(**_cfg(tiny_embedded, zh_corpus, tmp_path, lr=1e-3))
    assert _fingerprint("pretrain", plain, {})[0] != _fingerprint("pretrain", other, {})[0]


def test_cli_resume_through_the_runner_keeps_the_checkpoints(tiny_embedded, zh_corpus, tmp_path):
    from click.testing import CliRunner

    from bailong.cli import cli

    args = ["pretrain", "run", "--out", str(tmp_path), "--set", f"model={tiny_embedded}", "--set", f"corpus={zh_corpus}",
            "--set", "block_size=32", "--set", "eval_chars=100", "--set", "train.max_steps=3", "--set", "train.save_every=2"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()
    again = CliRunner().invoke(cli, [*args, "--resume"])
    assert again.exit_code == 0 and (tmp_path / "checkpoints" / "checkpoint-2").is_dir()  # up to date: nothing wiped or rerun
