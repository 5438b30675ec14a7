"""corpus stage: raw text -> clean, Traditional-script, deduplicated training text."""

from bailong.corpus.config import CorpusConfig, Source
from bailong.corpus.stage import run

__all__ = ["CorpusConfig", "Source", "run"]
