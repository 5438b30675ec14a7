"""vocab stage: learn zh-TW tokens and append them to the base tokenizer without changing old ids."""

from bailong.vocab.config import VocabConfig
from bailong.vocab.stage import run

__all__ = ["VocabConfig", "run"]
