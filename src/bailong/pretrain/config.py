from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bailong.config import StageConfig


class LoraSettings(BaseModel):
    """How the model is adapted; shared by pretrain and sft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantization: Literal["nf4", "int8", "none"] = Field(
        "nf4", description="nf4: QLoRA (4-bit NF4 base, double quantization, bitsandbytes); int8: 8-bit base (LLM.int8); "
        "none: plain LoRA on a 16/32-bit base"
    )
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="dtype of the unquantized weights and of the 4-bit matmuls (auto: bfloat16 on GPU, float32 on CPU)"
    )
    r: int = Field(8, gt=0, description="LoRA rank")
    alpha: int = Field(16, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: str | list[str] = Field("all-linear", description="modules that get LoRA ('all-linear': every linear layer but lm_head)")
    embeddings: Literal["new-rows", "full", "frozen"] = Field(
        "new-rows",
        description="new-rows: train only the added token rows of embed_tokens/lm_head (PEFT trainable tokens); "
        "full: train the whole matrices; frozen: train neither",
    )
    gradient_checkpointing: bool = Field(False, description="trade compute for activation memory")


class TrainSettings(BaseModel):
    """The optimization loop; shared by pretrain and sft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(30, gt=0, description="optimizer steps")
    batch_size: int = Field(2, gt=0, description="sequences per micro-batch")
    grad_accum: int = Field(1, gt=0, description="micro-batches per optimizer step (tokens/step = batch_size x grad_accum x block)")
    lr: float = Field(2e-4, gt=0, description="peak learning rate of the LoRA weights")
    embedding_lr: float | None = Field(None, gt=0, description="learning rate of trained embedding rows (default: lr)")
    warmup_steps: int = Field(3, ge=0, description="linear warmup steps before the cosine decay")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="data order and LoRA init")
    log_every: int = Field(5, gt=0, description="print the loss every N steps")
    save_every: int = Field(0, ge=0, description="write a checkpoint every N steps (0: none); kill -9 then loses at most N steps")
    keep_checkpoints: int = Field(2, gt=0, description="checkpoints kept (the newest)")
    eval_every: int = Field(0, ge=0, description="score held-out bits/char (eval_corpus, eval_chars) every N steps (0: only after training)")
    tensorboard: bool = Field(True, description="write TensorBoard logs (loss, lr, held-out bits/char) to out_dir/tensorboard")
    launcher: list[str] | None = Field(
        None, description="run training in several processes through this launcher, which must accept '-m module args': "
        "[accelerate, launch, --config_file, configs/accelerate/ddp.yaml] (DDP over the GPUs), "
        "configs/accelerate/fsdp-qlora.yaml instead (FSDP2: weights, gradients and optimizer states sharded), "
        "configs/accelerate/deepspeed-zero2.yaml (DeepSpeed ZeRO-2: gradients and optimizer states partitioned), "
        "or [torchrun, --standalone, --nproc_per_node, '2'] (CPU processes over gloo). batch_size is per process")
    resume: bool = Field(False, description="continue from the newest checkpoint in out_dir/checkpoints: same data order, "
                         "optimizer, scheduler and RNG state as the uninterrupted run")


# Settings that change how a run is watched or saved, never what it computes (left out of fingerprints).
TRAIN_BOOKKEEPING = ("train.resume", "train.log_every", "train.save_every", "train.keep_checkpoints", "train.tensorboard")


class PretrainConfig(StageConfig):
    """QLoRA continued pretraining on the corpus with the extended tokenizer; writes a merged model."""

    bookkeeping = (*TRAIN_BOOKKEEPING, "token_cache")

    model: Path | None = Field(None, description="model folder to train (the embed stage's model/)")
    corpus: Path | None = Field(None, description="training text: the corpus stage's train.jsonl")
    eval_corpus: Path | None = Field(None, description="held-out JSONL for bits/char after training")
    out_dir: Path = Field(description="output folder")
    block_size: int = Field(256, gt=8, description="tokens per packed training sequence (documents joined with EOS)")
    eval_chars: int = Field(5_000, gt=0, description="characters of held-out text scored after training")
    cross_document_attention: bool = Field(
        False, description="let tokens attend to the previous documents packed in their block (off: position ids restart "
        "after each EOS, so attention stays within a document)")
    token_cache: Path | None = Field(None, description="where the tokenized corpus is cached (default: ~/.cache/bailong/tokens)")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter settings")
    train: TrainSettings = Field(default_factory=TrainSettings, description="optimization settings")

    def input_paths(self) -> dict[str, Path]:
        paths = {"model": self.model, "corpus": self.corpus, "eval_corpus": self.eval_corpus}
        return {k: v for k, v in paths.items() if v}
