import json
import math
import re

import pytest

from bailong.models import load_model
from bailong.preference import PreferenceConfig, run


@pytest.mark.parametrize("method,metric", [("orpo", "log_odds_ratio"), ("dpo", "rewards/margins")])
def test_preference_tuning_runs_and_logs_its_metrics(tiny_embedded, zh_corpus, tmp_path, method, metric):
    result = run(PreferenceConfig(model=tiny_embedded, method=method, out_dir=tmp_path, max_length=512, eval_corpus=zh_corpus,
                                  eval_chars=300, train={"max_steps": 3, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1,
                                                         "eval_every": 2}))
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3]
    assert [h["step"] for h in history if "bpc_zh" in h] == [2]  # train.eval_every
    assert all(math.isfinite(h[metric]) for h in history)
    stats = result.stats
    assert stats["method"] == method and stats["pairs"] > 10
    # pairs the window cannot hold are dropped and listed, never truncated into empty answers
    too_long = [p for p in stats["skipped_examples"] if "longer than max_length 512: dropped" in p]
    assert too_long and all(re.fullmatch(r".+demo_chat\.jsonl:\d+: \d+ tokens, longer than max_length 512: dropped", p)
                            for p in too_long)
    assert metric in stats["final"]
    merged = load_model(tmp_path / "model")
    assert not any("lora" in k for k in merged.state_dict())
    assert (tmp_path / "loss.png").stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("preference/bpc_zh")] == [2]


def test_resume_from_a_trl_checkpoint_repeats_the_same_steps(tiny_embedded, tmp_path):
    import shutil

    cfg = PreferenceConfig(model=tiny_embedded, out_dir=tmp_path, max_length=512, train={
        "max_steps": 4, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "save_every": 2, "keep_checkpoints": 3, "tensorboard": False})
    run(cfg)
    first = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-4")  # as if killed between steps 2 and 4
    run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"resume": True})}))
    again = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(h["step"], h["loss"]) for h in again] == [(h["step"], h["loss"]) for h in first]
    # steps 1-2 came from the checkpoint's log, not from training again (only steps run now are timed)
    assert ["seconds" in h for h in again] == [False, False, True, True]
