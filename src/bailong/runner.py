"""Recipes: one YAML file lists the stages; each stage's inputs are wired to earlier stages' outputs.

Every stage run leaves ``<run_dir>/<stage>/manifest.json`` (resolved config, input hashes, package
versions, timings, status, artifacts, stats). A stage is skipped when its manifest says done with
the same fingerprint: a hash of its config and of its inputs, where an upstream artifact's hash is
that stage's fingerprint. A changed config or input therefore reruns that stage and all below it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from dataclasses import dataclass

import yaml
from pydantic import BaseModel, ConfigDict, Field

from bailong import bench, corpus, embed, preference, pretrain, sft, vocab
from bailong.config import BailongError, ConfigError, StageConfig, StageResult, parse_config, unknown_keys
from bailong.io import content_hash, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    config: type[StageConfig]
    run: Callable[[Any], StageResult]


# In pipeline order. Plain data on purpose: a stage is a config class and a function.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(name="corpus", config=corpus.CorpusConfig, run=corpus.run),
        Stage(name="vocab", config=vocab.VocabConfig, run=vocab.run),
        Stage(name="embed", config=embed.EmbedConfig, run=embed.run),
        Stage(name="pretrain", config=pretrain.PretrainConfig, run=pretrain.run),
        Stage(name="sft", config=sft.SftConfig, run=sft.run),
        Stage(name="preference", config=preference.PreferenceConfig, run=preference.run),
        Stage(name="bench", config=bench.BenchConfig, run=bench.run),
    )
}

# stage -> config field -> candidate (upstream stage, artifact); the latest stage present wins.
WIRING: dict[str, dict[str, list[tuple[str, str]]]] = {
    "vocab": {"corpus": [("corpus", "train")], "eval_corpus": [("corpus", "heldout")]},
    "embed": {"tokenizer": [("vocab", "tokenizer")], "new_tokens": [("vocab", "new_tokens")], "eval_corpus": [("corpus", "heldout")],
              "fit_corpus": [("corpus", "train")]},
    "pretrain": {"model": [("embed", "model")], "corpus": [("corpus", "train")], "eval_corpus": [("corpus", "heldout")]},
    "sft": {"model": [("pretrain", "model"), ("embed", "model")], "eval_corpus": [("corpus", "heldout")]},
    "preference": {"model": [("sft", "model"), ("pretrain", "model")], "eval_corpus": [("corpus", "heldout")]},
    "bench": {"model": [("preference", "model"), ("sft", "model"), ("pretrain", "model"), ("embed", "model")],
              "eval_corpus": [("corpus", "heldout")]},
}
_PACKAGES = ("bailong", "torch", "transformers", "peft", "bitsandbytes", "tokenizers", "opencc")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_dir: Path = Field(description="where every stage writes its folder, manifest and the report")
    base_model: str | None = Field(None, description="given to every stage with a base_model key (vocab, embed)")
    stages: dict[str, dict[str, Any]] = Field(description="stage name -> its config (out_dir is filled in)")


def load_recipe(path: Path, overrides: list[str] = ()) -> Recipe:
    """Parse a recipe YAML file (`stage.key=value` overrides applied); unknown stages/keys rejected."""
    from bailong.config import apply_overrides

    path = Path(path)
    if not path.is_file():
        raise BailongError(f"recipe '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping with run_dir and stages")
    data = apply_overrides(data, [o if o.startswith(("run_dir=", "base_model=")) else f"stages.{o}" for o in overrides])
    recipe = parse_config(Recipe, data, str(path))
    errors = []
    for name in recipe.stages:
        if name not in STAGES:
            import difflib

            close = difflib.get_close_matches(name, list(STAGES), n=1)
            errors.append(f"{path}: unknown stage '{name}'" + (f" (did you mean '{close[0]}'?)" if close else f" (stages: {', '.join(STAGES)})"))
    if errors:
        raise ConfigError("\n".join(errors))
    return recipe


def _jsonable(cfg: BaseModel) -> dict:
    return json.loads(cfg.model_dump_json())


def _fingerprint(name: str, cfg: StageConfig, upstream: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(fingerprint, input hashes). Upstream artifacts count by their stage's fingerprint; other files by content."""
    inputs = {}
    for key, path in sorted(cfg.input_paths().items()):
        if key in upstream:
            inputs[key] = upstream[key]
        elif Path(path).exists():
            inputs[key] = content_hash(Path(path))
        else:
            raise BailongError(f"{name}: input {key} '{path}' does not exist")
    config = cfg.fingerprint_config()
    blob = json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16], inputs


def _versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(stage_dir: Path) -> dict | None:
    try:
        return json.loads((stage_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def run_stage(name: str, cfg: StageConfig, upstream: dict[str, str] | None = None, force: bool = False) -> tuple[dict, bool]:
    """Run one stage unless its manifest matches; return (manifest, ran)."""
    stage_dir = Path(cfg.out_dir)
    fingerprint, inputs = _fingerprint(name, cfg, upstream or {})
    old = read_manifest(stage_dir)
    if not force and old and old.get("status") == "done" and old.get("fingerprint") == fingerprint:
        log.info("%s: up to date (fingerprint %s), skipped", name, fingerprint)
        return old, False
    if old and old.get("fingerprint") != fingerprint and stage_dir.exists():
        shutil.rmtree(stage_dir)  # outputs of another config: never mix them with the new ones
    stage_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"stage": name, "status": "running", "fingerprint": fingerprint, "config": _jsonable(cfg),
                "inputs": inputs, "versions": _versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(stage_dir / "manifest.json", manifest)
    start = time.perf_counter()
    try:
        result = STAGES[name].run(cfg)
    except BaseException as exc:
        manifest |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - start, 1)}
        write_json(stage_dir / "manifest.json", manifest)
        raise
    finally:
        # Models with hooks (PEFT, bitsandbytes) sit in reference cycles; without a full collection
        # each stage's gigabytes stay allocated while the next stage loads its own.
        gc.collect()
    manifest |= {
        "status": "done",
        "seconds": round(time.perf_counter() - start, 1),
        "artifacts": {k: str(v) for k, v in result.artifacts.items()},
        "stats": result.stats,
    }
    write_json(stage_dir / "manifest.json", manifest)
    return manifest, True


def build_stage_config(name: str, raw: dict[str, Any], recipe: Recipe, done: dict[str, dict]) -> tuple[StageConfig, dict[str, str]]:
    """(validated config, upstream input ids) with out_dir, base_model and upstream inputs filled in.

    An input wired from an earlier stage is identified by that stage's fingerprint rather than by
    re-hashing its (possibly large) files.
    """
    data = dict(raw or {})
    data.setdefault("out_dir", str(recipe.run_dir / name))
    if recipe.base_model and "base_model" in STAGES[name].config.model_fields:
        data.setdefault("base_model", recipe.base_model)
    upstream = {}
    for field, candidates in WIRING.get(name, {}).items():
        found = next(((up, artifact) for up, artifact in candidates if up in done), None)
        if field in data or found is None:
            continue
        up, artifact = found
        data[field] = done[up]["artifacts"][artifact]
        upstream[field] = f"{up}:{done[up]['fingerprint']}:{artifact}"
    if isinstance(data.get("compare_models"), dict):
        data["compare_models"] = _compare_models(name, data["compare_models"], recipe, done, upstream)
    return parse_config(STAGES[name].config, data, f"stages.{name}"), upstream


def _compare_models(name: str, models: dict, recipe: Recipe, done: dict[str, dict], upstream: dict[str, str]) -> dict:
    """bench.compare_models values that name an earlier stage, or 'base', become that model's folder."""
    from bailong.models import resolve_model

    resolved = {}
    for label, ref in models.items():
        if ref == "base":
            base = recipe.base_model or (recipe.stages.get("embed") or {}).get("base_model")
            if not base:
                raise ConfigError(f"stages.{name}.compare_models.{label}: 'base' needs the recipe's base_model")
            resolved[label] = str(resolve_model(base))
            upstream[f"compare_{label}"] = f"base:{base}"
        elif ref in STAGES:
            if ref not in done or "model" not in done[ref].get("artifacts", {}):
                raise ConfigError(f"stages.{name}.compare_models.{label}: stage '{ref}' has no model in this run")
            resolved[label] = done[ref]["artifacts"]["model"]
            upstream[f"compare_{label}"] = f"{ref}:{done[ref]['fingerprint']}:model"
        else:
            resolved[label] = ref  # a model folder
    return resolved


def run_recipe(recipe: Recipe, only: list[str] | None = None, force: bool = False) -> dict[str, dict]:
    """Run the recipe's stages in pipeline order; return each stage's manifest."""
    done: dict[str, dict] = {}
    # Validate every stage's keys before running anything, so a typo in `bench` fails in seconds.
    errors = []
    for name in STAGES:
        if name in recipe.stages:
            errors.extend(unknown_keys(STAGES[name].config, recipe.stages[name] or {}, f"stages.{name}"))
    if errors:
        raise ConfigError("\n".join(errors))
    for name in STAGES:
        if name not in recipe.stages:
            continue
        cfg, upstream = build_stage_config(name, recipe.stages[name], recipe, done)
        if only and name not in only:
            manifest = read_manifest(Path(cfg.out_dir))
            if not manifest or manifest.get("status") != "done":
                raise BailongError(f"stage '{name}' has not run yet in {recipe.run_dir}; run it first")
            done[name] = manifest
            continue
        log.info("== stage %s ==", name)
        done[name], _ = run_stage(name, cfg, upstream, force=force)
    return done
