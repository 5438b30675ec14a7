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
    coverage: list[str] = Field(
        ["big5-level1"],
        description="character sets added first as single tokens where the base lacks them: "
        "big5-level1 (5,401 common Traditional characters), big5-level2 (7,652 more); [] for none",
    )
    coverage_file: Path | None = Field(None, description="a text file whose every character is also covered")
    learned: Path | None = Field(None, description="a learned.txt from `bailong vocab train` to extend with instead of training")
    max_piece_chars: int = Field(
        4, gt=0, description="longest learned piece in characters (most Chinese words have 1-4; longer legal "
        "boilerplate phrases waste the budget). On a few MB of training text 2 generalizes better (measured on "
        "DRCD: 0.765 vs 0.789 tokens/char)"
    )
    min_frequency: int = Field(2, ge=1, description="byte-level BPE: a learned merge must occur at least this often")
    max_train_chars: int | None = Field(None, gt=0, description="learn from at most this many corpus characters")
    eval_chars: int = Field(20_000, gt=0, description="characters of held-out text used for tokens/char")
    seed: int = Field(0, description="SentencePiece sampling seed")

    def input_paths(self) -> dict[str, Path]:
        from bailong.models import resolve_model

        paths = {"base_model": resolve_model(self.base_model), "corpus": self.corpus, "eval_corpus": self.eval_corpus,
                 "coverage_file": self.coverage_file, "learned": self.learned}
        return {k: v for k, v in paths.items() if v}
