"""Readers yield documents or counted problems; nothing is skipped silently.

Each reader yields ``(doc, None)`` for a document or ``(None, problem)`` where problem is a
``"file:line: reason"`` string the stage counts and reports.
"""

from __future__ import annotations

import glob
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from bailong.config import BailongError
from bailong.corpus.config import Source


@dataclass(slots=True)
class Doc:
    text: str
    id: str
    source: str
    metadata: dict = field(default_factory=dict)


Item = tuple[Doc | None, str | None]


def resolve_source_files(source: Source) -> list[Path]:
    if source.path.startswith("builtin:"):
        from bailong.corpus.debian_docs import BUILTIN_NAME, ensure_debian_zh_tw

        if source.path != f"builtin:{BUILTIN_NAME}":
            raise BailongError(f"unknown built-in corpus '{source.path}' (known: builtin:{BUILTIN_NAME})")
        return [ensure_debian_zh_tw()]
    files = sorted(Path(p) for p in glob.glob(str(Path(source.path).expanduser()), recursive=True))
    files = [f for f in files if f.is_file()] or []
    if not files:
        raise BailongError(f"corpus source '{source.path}' matches no file")
    return files


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="strict", newline="")
    return open(path, encoding="utf-8", errors="strict", newline="")


def _read_jsonl(path: Path, source: Source, name: str) -> Iterator[Item]:
    with open(path, "rb") as raw:
        stream = gzip.open(raw) if path.suffix == ".gz" else raw
        for lineno, line in enumerate(stream, 1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError:
                yield None, f"{where}: invalid UTF-8"
                continue
            except json.JSONDecodeError as exc:
                yield None, f"{where}: malformed JSON ({exc.msg})"
                continue
            text = row.get(source.text_field) if isinstance(row, dict) else None
            if not isinstance(text, str):
                yield None, f"{where}: no string field '{source.text_field}'"
                continue
            yield Doc(text, str(row.get("id", f"{path.name}:{lineno}")), name), None


def _read_text(path: Path, source: Source, name: str) -> Iterator[Item]:
    try:
        with _open(path) as f:
            content = f.read()
    except UnicodeDecodeError as exc:
        # Keep what decodes; report the file once rather than dropping it whole.
        content = path.read_bytes().decode("utf-8", errors="replace")
        yield None, f"{path}: invalid UTF-8 at byte {exc.start}; undecodable bytes replaced"
    if source.split == "file":
        chunks = [(1, content)]
    elif source.split == "line":
        chunks = list(enumerate(content.split("\n"), 1))
    else:
        chunks, start, buf = [], 1, []
        for lineno, line in enumerate(content.split("\n"), 1):
            if line.strip():
                if not buf:
                    start = lineno
                buf.append(line)
            elif buf:
                chunks.append((start, "\n".join(buf)))
                buf = []
        if buf:
            chunks.append((start, "\n".join(buf)))
    for lineno, text in chunks:
        if text.strip():
            yield Doc(text, f"{path.name}:{lineno}", name), None


def read_source(source: Source) -> Iterator[Item]:
    name = source.name or source.path
    for path in resolve_source_files(source):
        fmt = source.format
        if fmt == "auto":
            fmt = "jsonl" if path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz")) else "text"
        reader = _read_jsonl if fmt == "jsonl" else _read_text
        yield from reader(path, source, name)
