"""preference stage: ORPO or DPO (TRL) on (prompt, chosen, rejected) pairs after chat fine-tuning."""

from bailong.preference.config import PreferenceConfig
from bailong.preference.stage import run

__all__ = ["PreferenceConfig", "run"]
