"""Small file helpers: atomic writes, JSONL, content hashes with a cache."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

CACHE_DIR = Path(os.environ.get("BAILONG_CACHE", Path.home() / ".cache" / "bailong"))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path` in one rename.

    Works for files and folders, so a crash never leaves a half-written artifact under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def write_jsonl(path: Path, rows) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def open_binary(path: Path):
    """A byte stream, decompressed by extension (.gz, .zst, .bz2)."""
    raw = open(path, "rb")
    if path.suffix == ".gz":
        return gzip.open(raw)
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    if path.suffix == ".bz2":
        return bz2.open(raw)
    return raw


def read_jsonl(path: Path) -> Iterator[dict]:
    """Rows of a JSONL file, or of every shard in a folder (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) in name order."""
    path = Path(path)
    if path.is_dir():
        for shard in sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"))):
            yield from read_jsonl(shard)
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
        return
    if path.suffix in (".gz", ".zst"):
        with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
            yield from (json.loads(line) for line in f if line.strip())
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_texts(path: Path, limit_chars: int | None = None) -> list[str]:
    """Texts of a corpus-stage JSONL (`text` field), stopping once `limit_chars` are collected."""
    texts, total = [], 0
    for row in read_jsonl(path):
        texts.append(row["text"])
        total += len(row["text"])
        if limit_chars is not None and total >= limit_chars:
            break
    return texts


_HASH_CACHE = CACHE_DIR / "hashes.json"


def _file_hash(path: Path, cache: dict) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if key not in cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        cache[key] = h.hexdigest()
    return cache[key]


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's (relative path, file hash) list.

    Hashes are cached by (path, size, mtime) so a second run over a 13 GB model costs nothing.
    """
    path = Path(path)
    try:
        cache = json.loads(_HASH_CACHE.read_text())
    except (OSError, ValueError):
        cache = {}
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}\0{_file_hash(f, cache)}\n".encode())
        digest = h.hexdigest()
    else:
        digest = _file_hash(path, cache)
    with contextlib.suppress(OSError):
        write_json(_HASH_CACHE, cache)
    return digest
