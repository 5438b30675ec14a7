"""embed stage: resize embed_tokens/lm_head and initialize new rows (zip-tie and baselines)."""

from bailong.embed.config import EmbedConfig
from bailong.embed.stage import run

__all__ = ["EmbedConfig", "run"]
