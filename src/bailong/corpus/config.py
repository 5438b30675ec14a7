from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bailong.config import StageConfig


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="file, glob, or builtin:debian-zh-tw-docs (Debian's zh-TW documentation)")
    format: Literal["auto", "text", "jsonl"] = Field("auto", description="auto: by extension (.jsonl/.jsonl.gz are JSONL)")
    text_field: str = Field("text", description="JSONL field holding the document text")
    split: Literal["blank_line", "line", "file"] = Field(
        "blank_line", description="plain text: a document per blank-line block, per line, or per file"
    )
    convert: Literal["s2twp", "s2tw", "none"] = Field(
        "s2twp", description="OpenCC profile applied to documents that contain Simplified characters"
    )
    name: str | None = Field(None, description="source name in the stats (default: the path)")
    max_chars: int | None = Field(
        None, gt=0, description="stop reading this source once this many characters are kept (balances a large source against small ones)"
    )


class CorpusConfig(StageConfig):
    """Read, normalize, convert, filter, deduplicate and split off a held-out slice."""

    sources: list[Source] = Field(min_length=1, description="where documents come from")
    out_dir: Path = Field(description="output folder")
    min_chars: int = Field(20, ge=0, description="drop documents shorter than this (characters)")
    min_han_ratio: float = Field(0.0, ge=0, le=1, description="drop documents whose share of Han characters is lower")
    heldout_fraction: float = Field(0.02, ge=0, lt=1, description="share of documents held out for evaluation")
    heldout_chars: int = Field(30_000, ge=0, description="stop holding out once this many characters are held out")
    seed: int = Field(0, description="changes which documents are held out")

    def input_paths(self) -> dict[str, Path]:
        import glob

        paths = {}
        for i, source in enumerate(self.sources):
            if source.path.startswith("builtin:"):
                continue
            matches = sorted(glob.glob(str(Path(source.path).expanduser()), recursive=True)) or [source.path]
            paths.update({f"sources[{i}]" + (f"#{j}" if j else ""): Path(m) for j, m in enumerate(matches)})
        return paths
