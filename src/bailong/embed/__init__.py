"""embed stage: resize embed_tokens/lm_head and initialize new rows (zip-tie, learned zip-tie, baselines)."""

from bailong.embed.config import EmbedCompareConfig, EmbedConfig
from bailong.embed.stage import run

__all__ = ["EmbedCompareConfig", "EmbedConfig", "run"]
