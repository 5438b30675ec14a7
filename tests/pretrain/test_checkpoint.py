"""Checkpoint tensors are gathered by name (the same code path FSDP takes): what they save must be what PEFT saves."""

import pytest
import torch
from safetensors.torch import load_file

from bailong.pretrain.checkpoint import gather
from bailong.pretrain.config import LoraSettings
from bailong.pretrain.model import load_for_training


@pytest.mark.parametrize("embeddings", ["new-rows", "full"])
def test_an_adapter_saved_from_gathered_tensors_equals_peft_s_own(tiny_embedded, tmp_path, embeddings):
    model, _, _ = load_for_training(tiny_embedded, LoraSettings(embeddings=embeddings), seed=0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))  # trained-looking values, so lora_B and the new rows are not zeros
    tensors, optim = gather(model)
    assert optim == {} and all(p.requires_grad for n, p in model.named_parameters() if n in tensors)
    model.save_pretrained(tmp_path / "peft")
    model.save_pretrained(tmp_path / "gathered", state_dict=tensors)
    own, ours = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("peft", "gathered"))
    assert sorted(own) == sorted(ours) and len(own) > 2
    assert all(torch.equal(own[k], ours[k]) for k in own)
