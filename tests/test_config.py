import pytest

from bailong.config import ConfigError, apply_overrides, parse_config
from bailong.pretrain import PretrainConfig
from bailong.vocab import VocabConfig


def test_unknown_key_gets_a_suggestion():
    with pytest.raises(ConfigError) as exc:
        parse_config(VocabConfig, {"base_model": "m", "out_dir": "o", "new_tokns": 5}, "vocab")
    assert str(exc.value) == "vocab: unknown key 'new_tokns' (did you mean 'new_tokens'?)"


def test_unknown_nested_key_is_found():
    with pytest.raises(ConfigError) as exc:
        parse_config(PretrainConfig, {"out_dir": "o", "train": {"max_stepz": 3}}, "pretrain")
    assert str(exc.value) == "pretrain.train: unknown key 'max_stepz' (did you mean 'max_steps'?)"


def test_all_errors_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        parse_config(VocabConfig, {"new_tokens": -1}, "vocab")
    lines = str(exc.value).splitlines()
    assert len(lines) == 3
    assert any(line.startswith("vocab.base_model:") for line in lines)
    assert any(line.startswith("vocab.new_tokens:") for line in lines)


def test_overrides_parse_yaml_scalars_and_nest():
    data = apply_overrides({"train": {"lr": 1.0}}, ["train.max_steps=5", "lora.embeddings=full", "name="])
    assert data == {"train": {"lr": 1.0, "max_steps": 5}, "lora": {"embeddings": "full"}, "name": ""}


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        apply_overrides({}, ["train.max_steps"])


def test_configs_are_frozen():
    cfg = parse_config(VocabConfig, {"base_model": "m", "out_dir": "o"}, "vocab")
    with pytest.raises(Exception):
        cfg.new_tokens = 3
