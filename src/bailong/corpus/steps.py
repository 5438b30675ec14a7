"""The corpus stage's datatrove pipeline steps.

Each step counts what it does per source in a ``Counter`` and writes it, when its task finishes,
to ``<tally_dir>/<step>-<rank>.json``; the stage adds the tallies up, so the accounting survives
process boundaries, Slurm jobs and reruns that skip completed tasks.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

from bailong.corpus import filters
from bailong.corpus.config import CorpusConfig, Filters, Source
from bailong.corpus.readers import Problem, read_source, resolve_files
from bailong.zh import han_count, simplified_chars, to_traditional

MAX_PROBLEMS_LISTED = 50


class _Tallying(PipelineStep):
    """A step whose per-source counts end up in tally_dir (written atomically at the end of a task)."""

    def __init__(self, tally_dir: Path, step: str):
        super().__init__()
        self.tally_dir, self.step = str(tally_dir), step

    def save(self, counts: Counter, rank: int, extra: dict | None = None) -> None:
        path = Path(self.tally_dir) / f"{self.step}-{rank:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"counts": dict(counts), **(extra or {})}, ensure_ascii=False))
        tmp.replace(path)


class ReadSources(_Tallying):
    """Every source's share for this task, as datatrove Documents tagged with their source."""

    name = "bailong read"
    type = "📖 - READER"

    def __init__(self, sources: list[Source], tally_dir: Path):
        super().__init__(tally_dir, "read")
        self.sources = sources

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        counts: Counter = Counter()
        problems: list[str] = []
        for source in self.sources:
            label, kept_chars = source.label, 0
            items = read_source(source, resolve_files(source), rank, world_size)
            for item in tqdm(items, desc=f"corpus {label} (task {rank})", unit=" docs", leave=False, mininterval=2):
                if isinstance(item, Problem):
                    counts[f"{label}|unreadable"] += 1
                    counts[f"{label}|unreadable:{item.reason.split(' (')[0].split(' at ')[0]}"] += 1
                    if len(problems) < MAX_PROBLEMS_LISTED:
                        problems.append(f"{item.where}: {item.reason}")
                    continue
                if source.max_chars is not None and kept_chars >= source.max_chars:
                    counts[f"{label}|capped"] = 1  # the rest of this task's share is not read
                    break
                counts[f"{label}|read"] += 1
                counts[f"{label}|read_chars"] += len(item.text)
                counts[f"{label}|read_bytes"] += len(item.text.encode("utf-8", errors="replace"))
                kept_chars += len(item.text)
                with self.track_time():
                    yield Document(item.text, f"{label}/{item.id}", metadata={"source": label, **item.metadata})
        self.save(counts, rank, {"problems": problems})


class Clean(_Tallying):
    """Normalize, strip boilerplate, convert Simplified, then the quality filters; drops carry a reason."""

    name = "bailong clean + filters"
    type = "🔻 - FILTER"

    def __init__(self, cfg: CorpusConfig, tally_dir: Path, rejected_dir: Path | None):
        super().__init__(tally_dir, "clean")
        self.filters: dict[str, Filters] = {s.label: cfg.filters_for(s) for s in cfg.sources}
        self.convert = {s.label: s.convert for s in cfg.sources}
        self.rejected_dir = str(rejected_dir) if rejected_dir else None

    def verdict(self, text: str, source: str, counts: Counter) -> tuple[str, str | None]:
        """(cleaned text, None to keep or the reason to drop)."""
        f = self.filters[source]
        text = filters.normalize(text)
        if f.boilerplate:
            text, removed = filters.strip_boilerplate(text)
            counts[f"{source}|boilerplate_lines"] += removed
        han = han_count(text)
        simplified = simplified_chars(text) if han else []
        if len(simplified) > f.max_simplified_ratio * han:
            if self.convert[source] == "none":
                return text, "simplified_script"
            text = to_traditional(text, self.convert[source])
            counts[f"{source}|converted"] += 1
            if len(simplified_chars(text)) > f.max_simplified_ratio * han:
                return text, "simplified_script"
        checks = (lambda: filters.length(text, f.min_chars, f.max_chars), lambda: filters.han_ratio(text, f.min_han_ratio),
                  lambda: filters.duplicate_lines(text, f.max_dup_line_fraction, f.max_dup_line_char_fraction),
                  lambda: filters.ngram_repetition(text, f.max_top_ngram_fraction, f.max_dup_ngram_fraction))
        for check in checks:  # cheapest first, and lazily: a too-short document never pays for the n-gram statistics
            verdict = check()
            if verdict is not True:
                return text, verdict[1]
        return text, None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from datatrove.pipeline.writers import JsonlWriter

        counts: Counter = Counter()
        rejected = JsonlWriter(self.rejected_dir, output_filename="${reason}/${rank}.jsonl.gz") if self.rejected_dir else None
        try:
            for doc in data:
                source = doc.metadata["source"]
                with self.track_time():
                    doc.text, reason = self.verdict(doc.text, source, counts)
                if reason is None:
                    counts[f"{source}|kept"] += 1
                    yield doc
                    continue
                counts[f"{source}|dropped:{reason}"] += 1
                if rejected:
                    doc.metadata["reason"] = reason
                    rejected.write(doc, rank)
        finally:
            if rejected:
                rejected.close()
        self.save(counts, rank)


class Count(_Tallying):
    """Documents and characters per source at this point of the pipeline (after a dedup filter)."""

    name = "bailong count"
    type = "📊 - STATS"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()
        for doc in data:
            counts[f"{doc.metadata['source']}|docs"] += 1
            counts[f"{doc.metadata['source']}|chars"] += len(doc.text)
            yield doc
        self.save(counts, rank)


def char_codes(text: str) -> np.ndarray:
    """Code points of the lowercased text without whitespace: what the shingles are made of."""
    return np.frombuffer("".join(text.lower().split()).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


class CharMinhashSignature(MinhashDedupSignature):
    """datatrove's MinHash signatures over character n-grams (Chinese has no spaces between words).

    Shingles are rolling hashes of code points, computed with numpy: deterministic across processes
    (Python's str hash is salted per process) and fast. Signatures are computed in chunks so a long
    statute does not need shingles x hashes of memory at once.
    """

    name = "bailong MinHash signatures (character n-grams)"

    def __init__(self, output_folder: str, config: MinhashConfig, ngram: int):
        from datatrove.utils.word_tokenizers import WordTokenizer

        class _Unused(WordTokenizer):  # datatrove wants a word tokenizer; character shingles need none
            def word_tokenize(self, text):
                return list(text)

            def sent_tokenize(self, text):
                return [text]

            def span_tokenize(self, text):
                return [(0, len(text))]

        super().__init__(output_folder, config, language=_Unused("zh"))
        self.ngram = ngram

    def get_shingles(self, text: str) -> np.ndarray:
        cp = char_codes(text)
        if len(cp) < self.ngram:
            return np.empty((0, 1), dtype=np.uint64)
        with np.errstate(over="ignore"):
            h = cp[: len(cp) - self.ngram + 1].copy()
            for k in range(1, self.ngram):
                h = h * np.uint64(0x100000001B3) + cp[k : len(cp) - self.ngram + 1 + k]
        return np.unique(h).reshape(-1, 1)

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        # Multiply-shift hashing (a*x + b mod 2^64, top 32 bits) instead of datatrove's mod-(2^61-1): the same
        # min-wise behaviour for deduplication, without 64-bit modulo (the slowest operation in the loop).
        a, b = self.parameters
        a = a | np.uint64(1)
        best = None
        for start in range(0, len(shingles), 8192):
            with np.errstate(over="ignore"):
                part = np.min((shingles[start : start + 8192] * a + b) >> np.uint64(32), axis=0)
            best = part if best is None else np.minimum(best, part)
        return [x.tolist() for x in np.split(best.astype(self.config.hash_config.np_dtype), self.config.num_buckets)]


def _unit(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}\0{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class MixAndSplit(_Tallying):
    """Hold out a deterministic slice, then down/up-sample each source to its target share; write shards.

    A document is emitted floor(rate) times plus once more with probability frac(rate), decided by
    a hash of (seed, id, copy): the same output for any number of workers.
    """

    name = "bailong mix + split"
    type = "💽 - WRITER"

    def __init__(self, cfg: CorpusConfig, out_dir: Path, tally_dir: Path):
        super().__init__(tally_dir, "mix")
        self.weights = {s.label: s.weight for s in cfg.sources if s.weight}
        self.total_chars, self.out_dir = cfg.total_chars, str(out_dir)
        self.fraction, self.seed, self.fmt = cfg.heldout_fraction, cfg.seed, cfg.output_format
        self.heldout_cap = cfg.heldout_chars // cfg.executor.tasks

    def _writer(self, folder: str):
        from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

        adapter = _row
        if self.fmt == "parquet":
            return ParquetWriter(folder, output_filename="${rank}.parquet", adapter=adapter)
        compression = "zstd" if self.fmt == "jsonl.zst" else None
        return JsonlWriter(folder, output_filename="${rank}.jsonl" + (".zst" if compression else ""), compression=compression,
                           adapter=adapter)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()
        held_chars = 0
        rates = mixing_rates(self.weights, read_tallies(Path(self.tally_dir), "formix"), self.total_chars) if self.weights else {}
        with self._writer(f"{self.out_dir}/train") as train, self._writer(f"{self.out_dir}/heldout") as held:
            for doc in data:
                source = doc.metadata["source"]
                if held_chars < self.heldout_cap and _unit(self.seed, doc.id) < self.fraction:
                    held.write(doc, rank)
                    held_chars += len(doc.text)
                    counts[f"{source}|heldout_docs"] += 1
                    counts[f"{source}|heldout_chars"] += len(doc.text)
                    continue
                rate = rates.get(source, 1.0)
                copies = int(rate) + (_unit(self.seed + 1, doc.id) < rate - int(rate))
                for copy in range(copies):
                    out = doc if copy == 0 else Document(doc.text, f"{doc.id}#{copy}", metadata=doc.metadata)
                    train.write(out, rank)
                counts[f"{source}|train_docs"] += copies
                counts[f"{source}|train_chars"] += copies * len(doc.text)
                counts[f"{source}|train_han_chars"] += copies * han_count(doc.text) if copies else 0
                counts[f"{source}|train_unique_docs"] += copies > 0
                counts[f"{source}|sampled_out"] += copies == 0
        self.save(counts, rank)
        return
        yield  # a generator: datatrove iterates every step


def _row(self, document: Document) -> dict:
    return {"id": document.id, "text": document.text, "source": document.metadata.get("source")}


def read_tallies(tally_dir: Path, step: str) -> Counter:
    total: Counter = Counter()
    for path in sorted(tally_dir.glob(f"{step}-*.json")):
        total.update(json.loads(path.read_text())["counts"])
    return total


def mixing_rates(weights: dict[str, float], counts: Counter, total_chars: int | None) -> dict[str, float]:
    """Sampling rate per source so that its share of characters is its weight's share.

    >>> mixing_rates({"a": 3, "b": 1}, Counter({"a|chars": 100, "b|chars": 100}), None)
    {'a': 1.5, 'b': 0.5}
    """
    have = {s: counts.get(f"{s}|chars", 0) for s in weights}
    target = total_chars or sum(have.values())
    norm = sum(weights.values())
    return {s: (weights[s] / norm * target / have[s]) if have[s] else 0.0 for s in weights}
