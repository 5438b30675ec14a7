"""Validated stage configs: frozen pydantic models, unknown keys rejected with a suggestion.

Every error in a config is collected and raised once as a ``ConfigError`` whose message is one line
per problem, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError


class BailongError(Exception):
    """An error the user can fix; the CLI prints its message alone, without a traceback."""


class ConfigError(BailongError):
    pass


class StageConfig(BaseModel):
    """Base of every stage config: frozen, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: Dotted keys that do not change what the stage writes (how it runs, logs or checkpoints): left out of
    #: the fingerprint, so changing one neither reruns a finished stage nor wipes a failed one's checkpoints.
    bookkeeping: ClassVar[tuple[str, ...]] = ()

    def input_paths(self) -> dict[str, Path]:
        """Files and folders this stage reads; the runner hashes them to decide on reruns."""
        return {}

    def fingerprint_config(self) -> dict:
        """The config as JSON, without out_dir and the bookkeeping keys."""
        data = json.loads(self.model_dump_json(exclude={"out_dir"}))
        for key in self.bookkeeping:
            *parents, leaf = key.split(".")
            node = data
            for part in parents:
                node = node.get(part) or {}
            node.pop(leaf, None)
        return data


@dataclass
class StageResult:
    """What a stage wrote (artifact name -> path) and what it measured."""

    artifacts: dict[str, Path]
    stats: dict[str, Any] = field(default_factory=dict)


C = TypeVar("C", bound=BaseModel)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class behind `X`, `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def unknown_keys(cls: type[BaseModel], data: Any, where: str) -> list[str]:
    if not isinstance(data, dict):
        return []
    errors = []
    known = list(cls.model_fields)
    for key, value in data.items():
        if key not in cls.model_fields:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
            errors.append(f"{where}: unknown key '{key}'{hint}")
            continue
        nested = _nested_model(cls.model_fields[key].annotation)
        if nested is None:
            continue
        items = value if get_origin(cls.model_fields[key].annotation) is list else [value]
        for i, item in enumerate(items if isinstance(items, list) else [items]):
            sub = f"{where}.{key}[{i}]" if isinstance(value, list) else f"{where}.{key}"
            errors.extend(unknown_keys(nested, item, sub))
    return errors


def parse_config(cls: type[C], data: dict[str, Any] | None, where: str) -> C:
    """Validate `data` as `cls`; raise one ConfigError listing every problem.

    >>> parse_config(VocabConfig, {"new_tokns": 10}, "vocab")  # doctest: +SKIP
    ConfigError: vocab: unknown key 'new_tokns' (did you mean 'new_tokens'?)
    """
    data = dict(data or {})
    errors = unknown_keys(cls, data, where)
    if not errors:
        try:
            return cls(**data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                errors.append(f"{where}.{loc}: {err['msg']}" if loc else f"{where}: {err['msg']}")
    raise ConfigError("\n".join(errors))


def describe_fields(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(key, 'help (default: x)') for each field, nested models flattened with dots; for --help."""
    rows = []
    for name, info in cls.model_fields.items():
        nested = _nested_model(info.annotation)
        if info.is_required():
            default = "required"
        elif info.default_factory is not None:
            default = "defaults below" if nested is not None else f"default: {info.default_factory()!r}"
        else:
            default = f"default: {info.default!r}"
        rows.append((prefix + name, f"{info.description or ''} ({default})"))
        if nested is not None and nested is not cls:
            rows.extend(describe_fields(nested, prefix + name + ("[]." if get_origin(info.annotation) is list else ".")))
    return rows


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `a.b=value` overrides (values parsed as YAML scalars) to a config dict."""
    import yaml

    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not KEY=VALUE")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = value
    return data
