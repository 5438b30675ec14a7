"""Loading a model for (Q)LoRA training and exporting a merged one. Shared by pretrain and sft."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from bailong.config import BailongError
from bailong.io import atomic_path
from bailong.models import load_model, load_tokenizer
from bailong.pretrain.config import LoraSettings

log = logging.getLogger(__name__)


def new_token_ids(model_dir: Path) -> list[int]:
    """Ids the embed stage added (from bailong_embed.json), or [] for a model without new rows."""
    meta = model_dir / "bailong_embed.json"
    return json.loads(meta.read_text())["new_token_ids"] if meta.exists() else []


def compute_dtype(lora: LoraSettings, cuda: bool) -> torch.dtype:
    if lora.compute_dtype == "auto":
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, lora.compute_dtype)


def load_for_training(model_dir: Path, lora: LoraSettings, seed: int, device: torch.device | None = None,
                      shard: bool = False):
    """(peft_model, tokenizer, trainable_share) ready for training on `device` (default: cuda:0 or cpu).

    QLoRA: the base is quantized to NF4 on load (embeddings and lm_head stay in full precision, as
    bitsandbytes leaves them), then LoRA goes on every linear layer and, with embeddings='new-rows',
    only the rows of the added tokens are trained (PEFT trainable tokens, which handles tied weights).
    With `shard` (FSDP) the packed 4-bit weights are stored in the compute dtype: FSDP can only
    shard floating-point tensors, and would otherwise keep a whole copy of them in every process.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    torch.manual_seed(seed)
    device = torch.device(device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
    dtype = compute_dtype(lora, device.type == "cuda")
    kwargs = {}
    if lora.quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype if shard else torch.uint8,
        )
    elif lora.quantization == "int8":
        if shard:
            raise BailongError("lora.quantization int8 cannot be sharded by FSDP (8-bit weights are not floating point); "
                               "use nf4 or none, or DDP (configs/accelerate/ddp.yaml)")
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if lora.quantization != "none":
        kwargs["device_map"] = {"": str(device)}
    model = load_model(model_dir, dtype=dtype, **kwargs)
    if lora.quantization == "none":
        model = model.to(device)
    tok = load_tokenizer(model_dir)
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        raise BailongError(f"{model_dir}: tokenizer has {len(tok)} tokens but the model only {model.get_input_embeddings().weight.shape[0]} rows")
    if lora.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=lora.gradient_checkpointing)
    elif lora.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()

    tied = bool(model.config.tie_word_embeddings)
    extra: dict = {}
    if lora.embeddings == "new-rows":
        ids = new_token_ids(model_dir)
        if not ids:
            raise BailongError(f"{model_dir} has no bailong_embed.json listing new token ids; use lora.embeddings: full or frozen")
        extra["trainable_token_indices"] = {"embed_tokens": ids} if tied else {"embed_tokens": ids, "lm_head": ids}
    elif lora.embeddings == "full":
        extra["modules_to_save"] = ["embed_tokens"] if tied else ["embed_tokens", "lm_head"]
        extra["ensure_weight_tying"] = tied
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        task_type="CAUSAL_LM", **extra,
    )
    peft_model = get_peft_model(model, config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info("trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return peft_model, tok, trainable / total


def merge_and_export(base_dir: Path, adapter_dir: Path, out: Path, tokenizer) -> Path:
    """Merge LoRA and trained rows into the full-precision base and save a plain HF model.

    The 4-bit training copy is not merged into: merging into dequantized NF4 weights would bake the
    quantization error in. The adapter goes onto the original full-precision weights instead.
    """
    from peft import PeftModel

    base = load_model(base_dir, dtype="auto")  # the checkpoint's own dtype: a 7B fp16 base stays 13 GB, not 26
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    with atomic_path(out) as folder:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        meta = base_dir / "bailong_embed.json"
        if meta.exists():
            (folder / "bailong_embed.json").write_text(meta.read_text())
    return out
