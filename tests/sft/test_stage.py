import json

import pytest

from bailong.sft import SftConfig, run

SHORT = [{"role": "user", "content": "你好嗎？"}, {"role": "assistant", "content": "我很好，謝謝。"}]
LONG = [{"role": "user", "content": "請說一個很長的故事。"}, {"role": "assistant", "content": "從前從前，" * 80}]


@pytest.mark.parametrize("too_long", ["truncate", "drop"])
def test_a_dialogue_over_max_length_is_listed_by_file_and_line(tiny_embedded, tmp_path, too_long):
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps({"messages": d}, ensure_ascii=False) for d in (SHORT, SHORT, LONG)) + "\n", encoding="utf-8")
    stats = run(SftConfig(model=tiny_embedded, data=str(data), out_dir=tmp_path / "out", max_length=64, too_long=too_long,
                          train={"max_steps": 2, "batch_size": 2})).stats
    listed = stats["truncated_examples"] if too_long == "truncate" else stats["skipped_examples"]
    assert len(listed) == 1 and listed[0].startswith(f"{data}:3: ") and "max_length 64" in listed[0]
    assert stats["dialogues"] == (3 if too_long == "truncate" else 2)
    assert stats["tokens_max"] > 64 and stats["processes"] == 1


def twenty_dialogues(folder):
    data = folder / "chat.jsonl"
    rows = [[{"role": "user", "content": f"第{i}題：你好嗎？"}, {"role": "assistant", "content": "我很好，謝謝。" * (1 + i % 3)}]
            for i in range(20)]
    data.write_text("\n".join(json.dumps({"messages": d}, ensure_ascii=False) for d in rows) + "\n", encoding="utf-8")
    return data


def test_packing_and_held_out_eval_loss(tiny_embedded, tmp_path):
    data = twenty_dialogues(tmp_path)
    stats = run(SftConfig(model=tiny_embedded, data=str(data), out_dir=tmp_path / "out", max_length=256, packing=True, eval_fraction=0.1,
                          train={"max_steps": 3, "batch_size": 2, "lr": 1e-2, "warmup_steps": 1, "eval_every": 3})).stats
    assert stats["held_out_dialogues"] == round(0.1 * stats["dialogues"])
    assert stats["rows"] < stats["dialogues"] - stats["held_out_dialogues"]  # several dialogues per row
    assert stats["eval_loss_after"] < stats["eval_loss_before"]
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["eval_loss"] == stats["eval_loss_after"]


@pytest.mark.parametrize("config_name, kind", [("fsdp-qlora.yaml", "FSDP"), ("deepspeed-zero2.yaml", "DEEPSPEED")])
def test_sharded_processes_fine_tune_like_one(tiny_embedded, tmp_path, config_name, kind):
    """Two CPU processes sharding the model (FSDP2) or the optimizer (DeepSpeed ZeRO-2), with the shipped accelerate
    configs: held-out scoring, which needs every process under FSDP, and the gathered export give the one-process
    figures."""
    from pathlib import Path

    config = Path(__file__).parents[2] / "configs" / "accelerate" / config_name
    data = twenty_dialogues(tmp_path)
    common = {"model": tiny_embedded, "data": str(data), "max_length": 128, "eval_fraction": 0.1, "lora": {"dropout": 0.0}}
    steps = {"max_steps": 2, "lr": 1e-2, "warmup_steps": 1, "eval_every": 2, "tensorboard": False}
    one = run(SftConfig(out_dir=tmp_path / "one", **common, train={**steps, "batch_size": 2})).stats
    two = run(SftConfig(out_dir=tmp_path / "two", **common, train={
        **steps, "batch_size": 1, "launcher": ["accelerate", "launch", "--config_file", str(config), "--num_processes", "2"]})).stats
    assert (two["processes"], two["distributed"]) == (2, kind)
    assert two["eval_loss_after"] == pytest.approx(one["eval_loss_after"], rel=1e-3) and two["eval_loss_after"] < two["eval_loss_before"]
    assert two["after"] == pytest.approx(one["after"], rel=1e-3)
