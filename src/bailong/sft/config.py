from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bailong.config import StageConfig
from bailong.pretrain.config import TRAIN_BOOKKEEPING, LoraSettings, TrainSettings


class SftConfig(StageConfig):
    """Multi-turn chat fine-tuning with the loss on every assistant turn and nothing else."""

    bookkeeping = TRAIN_BOOKKEEPING

    model: Path | None = Field(None, description="model folder to tune (the pretrain stage's model/)")
    data: str = Field("builtin:demo-chat", description="JSONL of dialogues: OpenAI `messages`, ShareGPT `conversations` (from/value) "
                      "or Alpaca instruction/input/output rows (recognized per line); or builtin:demo-chat (zh-TW dialogues "
                      "written for bailong)")
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char after tuning")
    out_dir: Path = Field(description="output folder")
    max_length: int = Field(512, gt=8, description="tokens per dialogue; longer dialogues are truncated and counted")
    too_long: Literal["truncate", "drop"] = Field("truncate", description="dialogues longer than max_length: truncate "
                                                  "(later turns lose their loss) or drop; either way listed as file:line in stats.json")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out text scored after tuning")
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="share of dialogues held out (fixed by train.seed) for the "
                                 "assistant-token eval loss, before and after tuning and every train.eval_every steps")
    packing: bool = Field(False, description="pack several dialogues into each max_length row (position ids restart per "
                          "dialogue, so attention stays inside it): fewer padding tokens, more dialogues per step")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter settings")
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(max_steps=10), description="optimization settings")

    def input_paths(self) -> dict[str, Path]:
        paths = {"model": self.model, "eval_corpus": self.eval_corpus}
        if not self.data.startswith("builtin:"):
            paths["data"] = Path(self.data)
        return {k: v for k, v in paths.items() if v}
