from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bailong.config import StageConfig


class EmbedConfig(StageConfig):
    """Resize embed_tokens/lm_head for the extended tokenizer and initialize the new rows."""

    base_model: str = Field(description="base model folder or built-in name")
    tokenizer: Path | None = Field(None, description="extended tokenizer folder (the vocab stage's tokenizer/)")
    new_tokens: Path | None = Field(None, description="the vocab stage's new_tokens.tsv (ids and old segmentation)")
    out_dir: Path = Field(description="output folder")
    method: Literal["zip-tie", "mean", "random"] = Field(
        "zip-tie",
        description="zip-tie: mean of the rows of the old tokens the new token splits into; "
        "mean: mean of all old rows; random: N(0, initializer_range)",
    )
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char of the base and of the initialized model")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out zh-TW (and English) text to score")
    seed: int = Field(0, description="seed for the random method")

    def input_paths(self) -> dict[str, Path]:
        from bailong.models import resolve_model

        paths = {"base_model": resolve_model(self.base_model), "tokenizer": self.tokenizer, "new_tokens": self.new_tokens,
                 "eval_corpus": self.eval_corpus}
        return {k: v for k, v in paths.items() if v}
