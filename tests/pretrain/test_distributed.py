"""Two CPU processes over gloo (DDP through accelerate), launched by the stage itself with torchrun."""

import json

import pytest

from bailong.pretrain import PretrainConfig, run


def history(folder):
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_two_processes_train_like_one_with_twice_the_batch(tiny_embedded, zh_corpus, tmp_path):
    common = {"model": tiny_embedded, "corpus": zh_corpus, "block_size": 32, "token_cache": tmp_path / "tokens",
              "lora": {"dropout": 0.0}}
    steps = {"max_steps": 4, "lr": 1e-2, "warmup_steps": 1, "tensorboard": False}
    one = run(PretrainConfig(out_dir=tmp_path / "one", **common, train={**steps, "batch_size": 2}))
    two_cfg = PretrainConfig(out_dir=tmp_path / "two", **common, train={
        **steps, "batch_size": 1, "save_every": 2, "launcher": ["torchrun", "--standalone", "--nproc_per_node", "2"]})
    two = run(two_cfg)
    assert (one.stats["processes"], two.stats["processes"]) == (1, 2)
    h1, h2 = history(tmp_path / "one"), history(tmp_path / "two")
    assert [h["tokens"] for h in h2] == [h["tokens"] for h in h1] == [64, 64, 64, 64]
    # Same blocks, gradients averaged over the two processes: the same losses up to float summation order.
    assert [h["loss"] for h in h2] == pytest.approx([h["loss"] for h in h1], rel=1e-3)
    assert h1[-1]["loss"] != h1[0]["loss"]
    assert (tmp_path / "two" / "model" / "model.safetensors").exists()

    # Resuming the 2-process run from checkpoint-2 recomputes steps 3-4 exactly.
    assert [p.name for p in (tmp_path / "two" / "checkpoints").iterdir()] == ["checkpoint-2"]
    run(two_cfg.model_copy(update={"train": two_cfg.train.model_copy(update={"resume": True})}))
    def losses(rows):
        return [(h["step"], h["loss"], h["tokens"]) for h in rows]

    assert losses(history(tmp_path / "two")) == losses(h2)


def test_a_failing_launch_is_one_clear_error(tiny_embedded, zh_corpus, tmp_path):
    from bailong.config import BailongError

    cfg = PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, train={"launcher": ["no-such-launcher"]})
    with pytest.raises(BailongError, match="launcher 'no-such-launcher' is not on PATH"):
        run(cfg)
