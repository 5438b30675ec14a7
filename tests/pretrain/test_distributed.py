"""Two CPU processes over gloo, launched by the stage itself: DDP through torchrun, FSDP2 and DeepSpeed
ZeRO-1/2 through `accelerate launch` with the shipped configs/accelerate/fsdp-qlora.yaml and deepspeed-zero2.yaml."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bailong.pretrain import PretrainConfig, run

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"
FSDP_CONFIG = CONFIGS / "fsdp-qlora.yaml"


def checkpoint_state(folder) -> dict:
    """Trainable tensors and AdamW moments of a checkpoint, flattened to {name: tensor}."""
    found = dict(load_file(str(folder / "trainable.safetensors")))
    optimizer = torch.load(folder / "state.pt", weights_only=True)["optimizer"]
    for name, state in optimizer["state"].items():
        found.update({f"{name}/{k}": v for k, v in state.items()})
    return found


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


# ZeRO-1 partitions only the optimizer states; offload cpu has DeepSpeed's CPU Adam step the partitions in CPU RAM.
@pytest.mark.parametrize("stage, offload", [("2", "none"), ("2", "cpu"), ("1", "none")])
def test_deepspeed_zero_trains_like_one_process_and_resumes_exactly(tiny_embedded, zh_corpus, tmp_path, stage, offload):
    common = {"model": tiny_embedded, "corpus": zh_corpus, "block_size": 32, "token_cache": tmp_path / "tokens",
              "lora": {"dropout": 0.0}}
    steps = {"max_steps": 4, "lr": 1e-2, "warmup_steps": 1, "tensorboard": False}
    one = run(PretrainConfig(out_dir=tmp_path / "one", **common, train={**steps, "batch_size": 4, "save_every": 2}))
    launcher = ["accelerate", "launch", "--config_file", str(CONFIGS / "deepspeed-zero2.yaml"), "--num_processes", "2",
                "--zero_stage", stage, "--offload_optimizer_device", offload]
    cfg = PretrainConfig(out_dir=tmp_path / "zero", **common, train={**steps, "batch_size": 1, "grad_accum": 2,
                                                                     "save_every": 2, "launcher": launcher})
    partitioned = run(cfg)
    assert (partitioned.stats["processes"], partitioned.stats["distributed"]) == (2, "DEEPSPEED")
    h1, h2 = history(tmp_path / "one"), history(tmp_path / "zero")
    # 2 processes x 2 micro-batches of 1 = one process's batch of 4: the engine steps once per 2 micro-batches.
    assert [h["tokens"] for h in h2] == [h["tokens"] for h in h1] == [128, 128, 128, 128]
    assert [h["loss"] for h in h2] == pytest.approx([h["loss"] for h in h1], rel=1e-3)
    # Each process keeps half of the AdamW states plus an fp32 master copy of half of the trained weights: 1.5 of
    # the one process's 2 copies. The whole model stays on each.
    assert 0.7 < partitioned.stats["optimizer_mb"] / one.stats["optimizer_mb"] < 0.8
    assert partitioned.stats["weights_mb"] == one.stats["weights_mb"]
    assert partitioned.stats["after"] == pytest.approx(one.stats["after"], rel=1e-3)
    # The checkpoint assembled the partitions into the one-process format: the same names, weights and AdamW
    # states (the moments would be halved if the engine scaled the already-averaged loss again).
    ckpt_one, ckpt_zero = (checkpoint_state(tmp_path / name / "checkpoints" / "checkpoint-2") for name in ("one", "zero"))
    assert ckpt_zero.keys() == ckpt_one.keys() and len(ckpt_one) > 10
    for key, value in ckpt_one.items():
        torch.testing.assert_close(ckpt_zero[key], value, rtol=1e-3, atol=1e-6, msg=key)

    run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"resume": True})}))
    assert [(h["step"], h["loss"]) for h in history(tmp_path / "zero")] == [(h["step"], h["loss"]) for h in h2]


def test_deepspeed_zero3_is_one_clear_error(tiny_embedded, zh_corpus, tmp_path, capfd):
    from bailong.config import BailongError

    launcher = ["accelerate", "launch", "--config_file", str(CONFIGS / "deepspeed-zero2.yaml"), "--num_processes", "2",
                "--zero_stage", "3"]
    cfg = PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, train={"launcher": launcher})
    with pytest.raises(BailongError, match="the launched training exited with status 1"):
        run(cfg)
    assert "DeepSpeed ZeRO-3 is not supported: use zero_stage 1 or 2" in capfd.readouterr().err


def test_a_failing_launch_is_one_clear_error(tiny_embedded, zh_corpus, tmp_path):
    from bailong.config import BailongError

    cfg = PretrainConfig(model=tiny_embedded, corpus=zh_corpus, out_dir=tmp_path, train={"launcher": ["no-such-launcher"]})
    with pytest.raises(BailongError, match="launcher 'no-such-launcher' is not on PATH"):
        run(cfg)
