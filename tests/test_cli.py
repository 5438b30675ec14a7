"""The command line as a user meets it: help for every command, one-line errors, exit codes."""

import json
import subprocess
import sys

import pytest
import yaml

COMMANDS = ["run", "demo", "corpus", "vocab", "embed", "pretrain", "sft", "preference", "bench", "chat", "serve", "export"]


def bailong(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bailong", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_top_level_help_lists_every_command():
    out = bailong("--help")
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert f"  {cmd} " in out.stdout


SUBCOMMANDS = [["run"], ["demo"], ["chat"], ["serve"], ["export"], ["vocab", "train"], ["vocab", "extend"], ["vocab", "stats"], ["embed", "init"],
               ["embed", "compare"], ["bench", "harness-tasks"]] + [
    [stage, "run"] for stage in ("corpus", "vocab", "embed", "pretrain", "sft", "bench")]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=" ".join)
def test_every_command_explains_its_options(cmd):
    out = bailong(*cmd, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage: bailong " + " ".join(cmd) in out.stdout
    if cmd[-1] in ("run", "train", "extend", "init", "compare") and cmd != ["run"]:
        assert "Config keys (in CONFIG or --set):" in out.stdout
        assert "out_dir" in out.stdout


def _assert_one_line_error(out, expected):
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {expected}"], out.stderr


def test_recipe_with_unknown_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"corpus": {"sources": [{"path": "x"}], "filters": {"min_charz": 3}}}}))
    _assert_one_line_error(bailong("run", str(path)), "stages.corpus.filters: unknown key 'min_charz' (did you mean 'min_chars'?)")


def test_recipe_with_missing_corpus_path(tmp_path):
    path = tmp_path / "r.yaml"
    missing = tmp_path / "nowhere.txt"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"corpus": {"sources": [{"path": str(missing)}]}}}))
    _assert_one_line_error(bailong("run", str(path)), f"corpus: input sources[0] '{missing}' does not exist")


def test_recipe_with_empty_corpus(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"corpus": {"sources": [{"path": str(empty)}]}}}))
    _assert_one_line_error(bailong("run", str(path)), f"corpus is empty: no document kept from {empty} (0 read, 1 unreadable; drops: {{}})")
    manifest = json.loads((tmp_path / "run" / "corpus" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_missing_recipe():
    _assert_one_line_error(bailong("run", "no-such-recipe.yaml"), "recipe 'no-such-recipe.yaml' does not exist")


def test_stage_command_runs_alone(tmp_path, zh_corpus):
    out = bailong("corpus", "run", "--out", str(tmp_path / "c"), "--set", f"sources=[{{path: '{zh_corpus}'}}]", "--set", "heldout_fraction=0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"train: {tmp_path / 'c' / 'train'}"
    again = bailong("corpus", "run", "--out", str(tmp_path / "c"), "--set", f"sources=[{{path: '{zh_corpus}'}}]", "--set", "heldout_fraction=0")
    assert "up to date" in again.stderr


def test_chat_streams_replies_and_handles_reset(tiny_chat):
    out = subprocess.run([sys.executable, "-m", "bailong", "chat", str(tiny_chat), "--max-new-tokens", "3", "--temperature", "0"],
                         input="你好\n/reset\n再見\n/quit\n", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("> ") == 4  # a prompt for each line typed


def test_export_writes_gguf_and_its_checks(tiny_embedded, tmp_path):
    out = bailong("export", str(tiny_embedded), "--gguf", str(tmp_path / "m.gguf"), "--outtype", "q8_0")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "m.gguf.json").read_text())
    assert report["export"]["outtype"] == "q8_0"
    assert report["verify"]["transformers_same_ids"] == report["verify"]["samples"]
    missing = bailong("export", str(tmp_path), "--gguf", str(tmp_path / "x.gguf"))
    _assert_one_line_error(missing, f"{tmp_path} is not a model folder (no config.json); pass a stage's merged model/ folder")


def test_run_resume_adds_no_stage(tmp_path, zh_corpus):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"corpus": {"sources": [{"path": str(zh_corpus)}]}}}))
    out = bailong("run", str(path), "--resume")
    assert out.returncode == 0, out.stderr
    assert [p.name for p in (tmp_path / "run").iterdir() if p.is_dir()] == ["corpus"]
