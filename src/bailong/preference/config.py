from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bailong.config import StageConfig
from bailong.pretrain.config import TRAIN_BOOKKEEPING, LoraSettings, TrainSettings


class PreferenceConfig(StageConfig):
    """Preference tuning with TRL: ORPO (no reference model) or DPO (the adapter-free model is the reference)."""

    bookkeeping = TRAIN_BOOKKEEPING

    model: Path | None = Field(None, description="model folder to tune (the sft stage's model/)")
    data: str = Field("builtin:demo-preference", description="JSONL of preference pairs: prompt/chosen/rejected as strings or "
                      "message lists, or chosen/rejected as whole conversations sharing everything but the last answer "
                      "(TRL's formats); builtin:demo-preference pairs each demo-chat answer (chosen) with its Simplified "
                      "Chinese conversion (rejected)")
    method: Literal["orpo", "dpo"] = Field("orpo", description="orpo: odds-ratio preference plus SFT loss, no reference model; "
                                           "dpo: direct preference optimization against the model without the adapter")
    beta: float = Field(0.1, gt=0, description="ORPO's lambda / DPO's beta: strength of the preference term")
    max_length: int = Field(512, gt=8, description="tokens of prompt + answer; longer pairs are truncated by TRL")
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char after tuning")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out text scored after tuning")
    out_dir: Path = Field(description="output folder")
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(embeddings="frozen"), description="adapter settings")
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(max_steps=10, lr=5e-5, warmup_steps=1),
                                 description="optimization settings (TRL's Trainer runs them)")

    def input_paths(self) -> dict[str, Path]:
        paths = {"model": self.model, "eval_corpus": self.eval_corpus}
        if not self.data.startswith("builtin:"):
            paths["data"] = Path(self.data)
        return {k: v for k, v in paths.items() if v}
