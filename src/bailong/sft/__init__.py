"""sft stage: multi-turn chat fine-tuning with assistant-only loss."""

from bailong.sft.config import SftConfig
from bailong.sft.stage import run

__all__ = ["SftConfig", "run"]
