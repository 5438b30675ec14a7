"""bailong: adapt an English-centric open LLM to Traditional Chinese (Taiwan).

Six stages, each a function ``run(cfg) -> StageResult`` in ``bailong.<stage>``:
corpus, vocab, embed, pretrain, sft, bench. ``bailong.runner`` chains them from a YAML recipe.
"""

__version__ = "0.1.0"
