"""Two CPU processes over gloo, launched by the stage itself: DDP through torchrun, FSDP2 through
`accelerate launch` with the shipped configs/accelerate/fsdp-qlora.yaml."""

import json
from pathlib import Path

import pytest

from bailong.pretrain import PretrainConfig, run

FSDP_CONFIG = Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp-qlora.yaml"


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
    assert (one.stats["processes"], two.stats["processes"], two.stats["distributed"]) == (1, 2, "MULTI_CPU")
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


def test_fsdp_shards_train_like_one_process_and_resume_exactly(tiny_embedded, zh_corpus, tmp_path):
    common = {"model": tiny_embedded, "corpus": zh_corpus, "block_size": 32, "token_cache": tmp_path / "tokens",
              "lora": {"dropout": 0.0}}
    steps = {"max_steps": 4, "lr": 1e-2, "warmup_steps": 1, "tensorboard": False}
    one = run(PretrainConfig(out_dir=tmp_path / "one", **common, train={**steps, "batch_size": 2}))
    launcher = ["accelerate", "launch", "--config_file", str(FSDP_CONFIG), "--num_processes", "2"]
    cfg = PretrainConfig(out_dir=tmp_path / "fsdp", **common, train={**steps, "batch_size": 1, "save_every": 2,
                                                                     "launcher": launcher})
    sharded = run(cfg)
    assert (one.stats["processes"], sharded.stats["processes"], sharded.stats["distributed"]) == (1, 2, "FSDP")
    h1, h2 = history(tmp_path / "one"), history(tmp_path / "fsdp")
    assert [h["tokens"] for h in h2] == [h["tokens"] for h in h1] == [64, 64, 64, 64]
    assert [h["loss"] for h in h2] == pytest.approx([h["loss"] for h in h1], rel=1e-3)
    # Each process holds about half of the weights and of the AdamW states (shards are rounded up per tensor).
    for key in ("weights_mb", "optimizer_mb"):
        assert 0.45 < sharded.stats[key] / one.stats[key] < 0.6, key
    # The merged export gathered the shards: it scores as the one-process model does.
    assert sharded.stats["after"] == pytest.approx(one.stats["after"], rel=1e-3)

    run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"resume": True})}))
    assert [(h["step"], h["loss"]) for h in history(tmp_path / "fsdp")] == [(h["step"], h["loss"]) for h in h2]


def test_a_failing_launch_is_one_clear_error(tiny_embedded, zh_corpus, tmp_path):
    from bailong.config import BailongError

    cfg = PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, train={"launcher": ["no-such-launcher"]})
    with pytest.raises(BailongError, match="launcher 'no-such-launcher' is not on PATH"):
        run(cfg)
