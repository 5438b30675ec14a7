"""The recipe runner end to end on a tiny random model: every stage, then skips and partial reruns."""

import json
from pathlib import Path

import pytest
import yaml

from bailong import runner
from bailong.runner import STAGES, Stage, load_recipe, run_recipe


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, tiny_base, zh_corpus):
    root = tmp_path_factory.mktemp("recipe")
    recipe = {
        "run_dir": str(root / "run"),
        "base_model": str(tiny_base),
        "stages": {
            "corpus": {"sources": [{"path": str(zh_corpus)}], "heldout_fraction": 0.1, "heldout_chars": 1500},
            "vocab": {"new_tokens": 200},
            "embed": {"eval_chars": 300},
            "pretrain": {"block_size": 64, "eval_chars": 300, "train": {"max_steps": 2, "batch_size": 2}},
            "sft": {"max_length": 128, "eval_chars": 300, "train": {"max_steps": 2, "batch_size": 2}},
            "preference": {"max_length": 512, "eval_chars": 300, "train": {"max_steps": 2, "batch_size": 2}},
            "bench": {"question_ids": [104, 113], "max_new_tokens": 8, "eval_chars": 300,
                      "compare_models": {"base": "base", "after sft": "sft"}},
        },
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def first_run(recipe_file):
    recipe = load_recipe(recipe_file)
    return recipe, run_recipe(recipe)


def _forbid(monkeypatch, names):
    def refuse(cfg):
        raise AssertionError(f"stage {type(cfg).__name__} should have been skipped")

    for name in names:
        monkeypatch.setitem(STAGES, name, Stage(name=name, config=STAGES[name].config, run=refuse))


def test_every_stage_ran_and_recorded_a_manifest(first_run):
    recipe, manifests = first_run
    assert list(manifests) == ["corpus", "vocab", "embed", "pretrain", "sft", "preference", "bench"]
    for name, manifest in manifests.items():
        on_disk = json.loads((recipe.run_dir / name / "manifest.json").read_text())
        assert on_disk["status"] == "done" and on_disk["fingerprint"] == manifest["fingerprint"]
        assert on_disk["versions"]["transformers"] == "5.23.0"
    assert manifests["vocab"]["stats"]["new_tokens_added"] == 200
    assert manifests["bench"]["stats"]["questions"] == 2
    comparison = manifests["bench"]["stats"]["comparison"]
    assert comparison["models"] == ["preference", "base", "after sft"]
    assert comparison["without_chat_template"] == ["base"]  # the tiny base gets bits/char only
    table = Path(comparison["markdown"]).read_text(encoding="utf-8")
    assert "| metric | preference | base | after sft |" in table
    assert "| gate pass rate (en) |" in table and "| bits/char zh (lower is better) |" in table


def test_final_model_loads_with_auto_classes_and_generates(first_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, manifests = first_run
    folder = manifests["preference"]["artifacts"]["model"]
    assert manifests["bench"]["config"]["model"] == str(folder)  # bench scores the last tuned model
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 4
    assert len(tok) == manifests["vocab"]["stats"]["base_vocab_size"] + 200
    assert model.get_input_embeddings().weight.shape[0] == -(-len(tok) // 64) * 64  # padded rows, never emitted


def test_second_run_skips_everything(first_run, monkeypatch):
    recipe, manifests = first_run
    _forbid(monkeypatch, STAGES)
    again = run_recipe(recipe)
    assert {k: m["fingerprint"] for k, m in again.items()} == {k: m["fingerprint"] for k, m in manifests.items()}


def test_changed_stage_reruns_it_and_what_follows(first_run, recipe_file, monkeypatch):
    _, manifests = first_run
    _forbid(monkeypatch, ["corpus", "vocab", "embed"])
    recipe = load_recipe(recipe_file, ["pretrain.train.max_steps=3"])
    again = run_recipe(recipe)
    assert [again[k]["fingerprint"] == manifests[k]["fingerprint"] for k in again] == [True, True, True, False, False, False, False]
    assert len((recipe.run_dir / "pretrain" / "history.jsonl").read_text().splitlines()) == 3


def test_unknown_stage_and_keys_are_reported_together(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": "x", "stages": {"vocab": {"new_tokns": 1}, "pretrian": {}}}))
    with pytest.raises(runner.ConfigError) as exc:
        run_recipe(load_recipe(path))
    assert str(exc.value) == f"{path}: unknown stage 'pretrian' (did you mean 'pretrain'?)"
    path.write_text(yaml.safe_dump({"run_dir": "x", "stages": {"vocab": {"new_tokns": 1}, "bench": {"max_new_tokes": 3}}}))
    with pytest.raises(runner.ConfigError) as exc:
        run_recipe(load_recipe(path))
    assert str(exc.value).splitlines() == [
        "stages.vocab: unknown key 'new_tokns' (did you mean 'new_tokens'?)",
        "stages.bench: unknown key 'max_new_tokes' (did you mean 'max_new_tokens'?)",
    ]


def test_report_summarizes_every_stage(first_run):
    from bailong.report import write_report

    recipe, manifests = first_run
    report = write_report(recipe.run_dir, manifests).read_text(encoding="utf-8")
    for heading in ("## Corpus", "## Vocabulary", "## Bits per character (held-out)", "## pretrain", "## sft", "## preference", "## Bench"):
        assert heading in report
    assert "| after zip-tie init |" in report
    assert (recipe.run_dir / "bpc.png").stat().st_size > 0
    html = (recipe.run_dir / "report.html").read_text(encoding="utf-8")
    assert "### Side by side\n\n| metric | preference | base | after sft |" in report
    assert "<h2>Bench</h2>" in html and '<img alt="bits per character" src="bpc.png"' in html


def test_paper_recipe_and_accelerate_configs_are_valid():
    """The GPU recipe cannot run here, but every key of it must parse, and accelerate must read its configs."""
    from accelerate.commands.config.config_args import load_config_from_file

    from bailong.runner import build_stage_config

    repo = Path(__file__).resolve().parents[1]
    recipe = load_recipe(repo / "recipes" / "llama2-7b-zh-tw.yaml")
    configs = {name: build_stage_config(name, raw, recipe, {})[0] for name, raw in recipe.stages.items()}
    assert configs["pretrain"].block_size == 2048 and configs["vocab"].new_tokens == 27241
    launcher = configs["pretrain"].train.launcher
    config_file = repo / launcher[launcher.index("--config_file") + 1]
    assert load_config_from_file(str(config_file)).distributed_type.value == "MULTI_GPU"
    kinds = {path.name: load_config_from_file(str(path)) for path in sorted((repo / "configs" / "accelerate").glob("*.yaml"))}
    assert {name: c.distributed_type.value for name, c in kinds.items()} == {
        "ddp-2-nodes.yaml": "MULTI_GPU", "ddp.yaml": "MULTI_GPU", "deepspeed-zero2.yaml": "DEEPSPEED",
        "fsdp-qlora.yaml": "FSDP"}
    assert kinds["fsdp-qlora.yaml"].fsdp_config["fsdp_version"] == 2
    assert kinds["deepspeed-zero2.yaml"].deepspeed_config["zero_stage"] == 2
