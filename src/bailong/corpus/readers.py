"""Readers: every input format as a stream of documents or counted problems.

A reader yields ``Doc`` for a document and ``Problem`` for anything it could not read (invalid
UTF-8, a malformed JSON line, a missing text field, an oversized line, an empty file), always with
``file:line`` so a user can look. Nothing is skipped silently. Files are streamed, never loaded
whole (except plain text split per file).
"""

from __future__ import annotations

import glob
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from bailong.config import BailongError
from bailong.corpus.config import Source
from bailong.io import open_binary

MAX_LINE_BYTES = 8 << 20  # a "line" over 8 MiB is a broken file, not a document: reported and skipped


@dataclass(slots=True)
class Doc:
    text: str
    id: str
    metadata: dict = field(default_factory=dict)


@dataclass(slots=True)
class Problem:
    where: str  # file:line
    reason: str


Item = Doc | Problem


def resolve_files(source: Source) -> list[Path]:
    if source.path.startswith("builtin:"):
        from bailong.corpus.debian_docs import BUILTIN_NAME, ensure_debian_zh_tw

        if source.path != f"builtin:{BUILTIN_NAME}":
            raise BailongError(f"unknown built-in corpus '{source.path}' (known: builtin:{BUILTIN_NAME})")
        return [ensure_debian_zh_tw()]
    path = Path(source.path).expanduser()
    if source.format == "hf-disk":
        if not path.is_dir():
            raise BailongError(f"corpus source '{source.path}': hf-disk needs a datasets.save_to_disk folder")
        return [path]
    files = sorted(p for p in map(Path, glob.glob(str(path), recursive=True)) if p.is_file())
    if not files and path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise BailongError(f"corpus source '{source.path}' matches no file")
    return files


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet"), (".xml", "wikipedia"),
                        (".warc.wet", "wet"), (".wet", "wet")):
        if name.endswith((suffix, suffix + ".gz", suffix + ".zst", suffix + ".bz2")):
            return fmt
    return "text"


def _lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over MAX_LINE_BYTES (read past, not kept)."""
    with open_binary(path) as f:
        stream = io.BufferedReader(f) if not isinstance(f, io.BufferedReader) else f
        lineno = 0
        while True:
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            lineno += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of the oversized line in chunks
                    line = stream.readline(MAX_LINE_BYTES)
                yield lineno, None
                continue
            yield lineno, line


def _walk(value, keys: list[str]) -> list[str]:
    """Strings at a dotted path; lists are walked element by element (articles.text)."""
    if isinstance(value, list):
        return [s for v in value for s in _walk(v, keys)]
    if not keys:
        return [value] if isinstance(value, str) and value else []
    return _walk(value.get(keys[0]), keys[1:]) if isinstance(value, dict) else []


def extract_text(row, text_field: str | list[str]) -> str | None:
    """The document text of a JSON row: one field, or several dotted paths joined by newlines.

    >>> extract_text({"name": "法", "articles": [{"text": "第一條"}, {"chapter": "章"}, {"text": "第二條"}]}, ["name", "articles.text"])
    '法\\n第一條\\n第二條'
    >>> extract_text({"text": 3}, "text") is None
    True
    """
    if isinstance(text_field, str):
        value = row.get(text_field) if isinstance(row, dict) else None
        return value if isinstance(value, str) else None
    parts = [s for f in text_field for s in _walk(row, f.split("."))]
    return "\n".join(parts) if parts else None


def read_jsonl(path: Path, source: Source, text_field: str | list[str] | None = None) -> Iterator[Item]:
    text_field = text_field or source.text_field
    n = 0
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        if line is None:
            yield Problem(where, f"line over {MAX_LINE_BYTES >> 20} MiB")
            continue
        if not line.strip():
            continue
        n += 1
        try:
            row = json.loads(line.rstrip(b"\r\n").decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield Problem(where, f"invalid UTF-8 at byte {exc.start}")
            continue
        except json.JSONDecodeError as exc:
            yield Problem(where, f"malformed JSON ({exc.msg})")
            continue
        text = extract_text(row, text_field)
        if text is None:
            yield Problem(where, f"no string field '{text_field if isinstance(text_field, str) else ', '.join(text_field)}'")
            continue
        meta = {k: row[k] for k in ("url", "title") if isinstance(row, dict) and isinstance(row.get(k), str)}
        yield Doc(text, str(row.get("id", f"{path.name}:{lineno}")), meta)
    if n == 0:
        yield Problem(f"{path}:0", "empty file")


def read_text(path: Path, source: Source) -> Iterator[Item]:
    """A document per line, per blank-line block, or per file; undecodable lines are reported."""
    buf: list[str] = []
    start = 0
    seen = False
    for lineno, raw in _lines(path):
        where = f"{path}:{lineno}"
        if raw is None:
            yield Problem(where, f"line over {MAX_LINE_BYTES >> 20} MiB")
            continue
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Problem(where, f"invalid UTF-8 at byte {exc.start}")
            continue
        seen = seen or bool(line.strip())
        if source.split == "line":
            if line.strip():
                yield Doc(line, f"{path.name}:{lineno}")
        elif source.split == "file" or line.strip():
            start = start or lineno
            buf.append(line)
        elif buf:
            yield Doc("\n".join(buf), f"{path.name}:{start}")
            buf, start = [], 0
    if buf and "".join(buf).strip():
        yield Doc("\n".join(buf), f"{path.name}:{start}")
    if not seen:
        yield Problem(f"{path}:0", "empty file")


def read_parquet(path: Path, source: Source) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        yield Problem(f"{path}:0", f"unreadable Parquet ({type(exc).__name__}: {exc})")
        return
    if source.text_field not in pf.schema_arrow.names:
        yield Problem(f"{path}:0", f"no column '{source.text_field}' (columns: {', '.join(pf.schema_arrow.names)})")
        return
    row = 0
    for batch in pf.iter_batches(batch_size=1024, columns=[source.text_field]):
        for text in batch.column(0).to_pylist():
            row += 1
            if isinstance(text, str):
                yield Doc(text, f"{path.name}:{row}")
            else:
                yield Problem(f"{path}:{row}", f"'{source.text_field}' is not a string")
    if row == 0:
        yield Problem(f"{path}:0", "empty file")


def read_hf_disk(path: Path, source: Source, rank: int, world_size: int) -> Iterator[Item]:
    """A datasets.save_to_disk folder; each task reads a contiguous shard of its rows."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets(list(ds.values()))
    if source.text_field not in ds.column_names:
        raise BailongError(f"{path}: no column '{source.text_field}' (columns: {', '.join(ds.column_names)})")
    shard = ds.shard(world_size, rank, contiguous=True)
    offset = sum(len(ds.shard(world_size, r, contiguous=True)) for r in range(rank))
    for i, text in enumerate(shard[source.text_field] if len(shard) < 10_000 else (r[source.text_field] for r in shard)):
        if isinstance(text, str):
            yield Doc(text, f"{path.name}:{offset + i}")
        else:
            yield Problem(f"{path}:{offset + i}", f"'{source.text_field}' is not a string")


def read_wet(path: Path, source: Source) -> Iterator[Item]:
    """Common Crawl WET: the plain-text 'conversion' records, URL as id."""
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        try:
            for k, record in enumerate(ArchiveIterator(f), 1):
                if record.rec_type != "conversion":
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI") or f"{path.name}:{k}"
                payload = record.content_stream().read()
                try:
                    yield Doc(payload.decode("utf-8"), url, {"url": url})
                except UnicodeDecodeError as exc:
                    yield Problem(f"{path}:record {k}", f"invalid UTF-8 at byte {exc.start}")
        except Exception as exc:  # warcio raises ArchiveLoadFailed and friends on a broken archive
            yield Problem(f"{path}", f"unreadable WARC ({type(exc).__name__}: {exc})")


def read_source(source: Source, files: list[Path], rank: int = 0, world_size: int = 1) -> Iterator[Item]:
    """This task's share of a source: files dealt round-robin, hf-disk rows split contiguously."""
    from bailong.corpus.wikipedia import read_wikipedia

    if source.format == "hf-disk":
        yield from read_hf_disk(files[0], source, rank, world_size)
        return
    for path in files[rank::world_size]:
        fmt = detect_format(path) if source.format == "auto" else source.format
        if fmt == "oscar":
            yield from read_jsonl(path, source, text_field="content" if source.text_field == "text" else source.text_field)
        elif fmt == "wikipedia":
            yield from read_wikipedia(path)
        else:
            yield from {"jsonl": read_jsonl, "text": read_text, "parquet": read_parquet, "wet": read_wet}[fmt](path, source)
