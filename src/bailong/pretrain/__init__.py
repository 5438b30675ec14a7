"""pretrain stage: QLoRA continued pretraining with new-row embedding training and merged export."""

from bailong.pretrain.config import LoraSettings, PretrainConfig, TrainSettings
from bailong.pretrain.stage import run

__all__ = ["LoraSettings", "PretrainConfig", "TrainSettings", "run"]
