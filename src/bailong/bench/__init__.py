"""bench stage: Bailong-bench answers, Traditional Chinese gates, optional LLM judge, bits/char."""

from bailong.bench.config import BenchConfig, Endpoint
from bailong.bench.stage import run

__all__ = ["BenchConfig", "Endpoint", "run"]
