from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bailong.config import StageConfig


class VocabConfig(StageConfig):
    """Learn zh-TW tokens from the corpus and append them to the base tokenizer, old ids unchanged."""

    base_model: str = Field(description="base model folder or built-in name; its tokenizer is extended")
    corpus: Path | None = Field(None, description="training text: the corpus stage's train.jsonl")
    eval_corpus: Path | None = Field(None, description="held-out JSONL for tokens/char before and after")
    out_dir: Path = Field(description="output folder")
    new_tokens: int = Field(27_241, gt=0, description="how many tokens to add (Bailong added 27,241 to Llama 2)")
    min_frequency: int = Field(2, ge=1, description="a learned merge must occur at least this often")
    max_train_chars: int | None = Field(None, gt=0, description="learn from at most this many corpus characters")
    eval_chars: int = Field(20_000, gt=0, description="characters of held-out text used for tokens/char")

    def input_paths(self) -> dict[str, Path]:
        from bailong.models import resolve_model

        paths = {"base_model": resolve_model(self.base_model), "corpus": self.corpus, "eval_corpus": self.eval_corpus}
        return {k: v for k, v in paths.items() if v}
