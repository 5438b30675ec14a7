from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bailong.config import StageConfig

Method = Literal["random", "mean", "hewitt", "subword-mean", "zip-tie", "zip-tie-learned"]


class EmbedConfig(StageConfig):
    """Resize embed_tokens/lm_head for the extended tokenizer and initialize the new rows."""

    base_model: str = Field(description="base model folder or built-in name")
    tokenizer: Path | None = Field(None, description="extended tokenizer folder (the vocab stage's tokenizer/)")
    new_tokens: Path | None = Field(None, description="the vocab stage's new_tokens.tsv (ids and old segmentation)")
    out_dir: Path = Field(description="output folder")
    method: Method = Field(
        "zip-tie",
        description="random | mean | hewitt (mean + covariance sample) | subword-mean (old tokenizer's pieces) | "
        "zip-tie (weighted mean of the token's byte rows) | zip-tie-learned (weights over the old pieces, fitted; see 'fit')",
    )
    fit: Literal["lm-loss", "least-squares"] = Field(
        "lm-loss", description="zip-tie-learned: lm-loss fits per-position piece weights, a blend toward the mean character "
        "row and a scale by next-token loss on fit_corpus with the base frozen (starts at subword-mean); least-squares fits a "
        "byte->character map on characters the old vocabulary has as one token (reports held-out R^2)",
    )
    fit_corpus: Path | None = Field(None, description="zip-tie-learned lm-loss: training text JSONL (the corpus stage's train.jsonl)")
    fit_chars: int = Field(4_000, gt=0, description="zip-tie-learned lm-loss: characters of fit_corpus to fit on")
    fit_steps: int = Field(40, ge=0, description="zip-tie-learned lm-loss: Adam steps (each on up to 8 blocks of 256 tokens)")
    fit_lr: float = Field(0.05, gt=0, description="zip-tie-learned lm-loss: Adam learning rate")
    weighting: Literal["uniform", "first", "last"] = Field("uniform", description="zip-tie: which byte is emphasized")
    emphasis: float = Field(2.0, gt=0, description="zip-tie first/last: weight of the emphasized byte relative to the others")
    pad_to_multiple_of: int | None = Field(
        64, gt=0, description="pad the vocabulary rows to a multiple of this (GPU-friendly shapes); pad rows are never "
        "emitted (suppressed in generation) and never scored; null: no padding",
    )
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char of the base and of the initialized model")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out zh-TW (and English) text to score")
    seed: int = Field(0, description="seed for random/hewitt and the learned fit's held-out split")

    def input_paths(self) -> dict[str, Path]:
        from bailong.models import resolve_model

        paths = {"base_model": resolve_model(self.base_model), "tokenizer": self.tokenizer, "new_tokens": self.new_tokens,
                 "eval_corpus": self.eval_corpus, "fit_corpus": self.fit_corpus}
        return {k: v for k, v in paths.items() if v}


class EmbedCompareConfig(EmbedConfig):
    """Every init method side by side in bits per character, optionally after a few pretraining steps."""

    methods: list[Method] = Field(
        ["random", "mean", "hewitt", "subword-mean", "zip-tie", "zip-tie-learned"], description="methods to compare"
    )
    weightings: list[Literal["uniform", "first", "last"]] = Field(["uniform", "first", "last"], description="zip-tie weightings to compare")
    fits: list[Literal["lm-loss", "least-squares"]] = Field(["lm-loss", "least-squares"], description="zip-tie-learned fits to compare")
    corpus: Path | None = Field(None, description="training text for pretrain_steps > 0 and, when fit_corpus is unset, the lm-loss fit (the corpus stage's train.jsonl)")
    pretrain_steps: int = Field(0, ge=0, description="also score each method after this many continued-pretraining steps (0: step 0 only)")
    pretrain: dict = Field(default_factory=dict, description="pretrain stage keys for those steps (e.g. {train: {batch_size: 4}})")
