"""Bench runs side by side: the table, the plot and the HTML page."""

from __future__ import annotations

import json

import pytest

from bailong.bench.compare import load_runs, write_comparison
from bailong.config import BailongError


def _bench_dir(path, stats):
    path.mkdir(parents=True)
    (path / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return path


def test_two_runs_side_by_side(tmp_path):
    base = _bench_dir(tmp_path / "base" / "bench", {
        "pass_rate_zh-TW": 0.2, "judge_mean_zh-TW": 1.5, "bpc": {"bpc_zh": 3.1, "bpc_en": 0.9},
        "by_category": {"writing": {"questions": 2, "pass_rate": 0.5, "judge_mean": 2.0}}})
    tuned = _bench_dir(tmp_path / "tuned" / "bench", {
        "pass_rate_zh-TW": 0.9, "judge_mean_zh-TW": 6.0, "bpc": {"bpc_zh": 2.0, "bpc_en": 0.9},
        "by_category": {"writing": {"questions": 2, "pass_rate": 1.0, "judge_mean": 7.5},
                        "coding": {"questions": 1, "pass_rate": 1.0, "judge_mean": 4.0}},
        "drcd": {"questions": 10, "exact_match": 40.0, "f1": 55.5}})
    out = write_comparison([str(base), f"instruct={tuned}"], tmp_path / "cmp")
    md = out["markdown"].read_text(encoding="utf-8")
    assert "| metric | base | instruct |" in md
    assert "| gate pass rate (zh-TW) | 0.2 | 0.9 |" in md
    assert "| judge mean: coding |  | 4.0 |" in md  # a row one run lacks is blank
    assert "| DRCD F1 |  | 55.5 |" in md
    assert "| bits/char zh (lower is better) | 3.1 | 2.0 |" in md
    assert (tmp_path / "cmp" / "categories.png").stat().st_size > 0
    html = out["html"].read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<table>" in html and '<img alt="scores per category" src="categories.png"' in html


def test_bad_runs_are_refused(tmp_path):
    with pytest.raises(BailongError, match="is not a bench output folder"):
        load_runs([str(tmp_path)])
    a = _bench_dir(tmp_path / "x" / "bench", {})
    with pytest.raises(BailongError, match="two runs are labelled 'x'"):
        load_runs([str(a), str(a)])
