"""Tokenizer- and model-level measurements every stage reports.

Bits per character (total negative log-likelihood in bits / characters) is comparable across
tokenizers, unlike perplexity, so it is the yardstick for the base, zip-tie init, and every later
stage.
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm


def english_sample(n_chars: int) -> str:
    """English prose present on every Python install (pydoc's topic help), for English checks."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    return text[:n_chars]


def tokens_per_char(tokenizer, texts: list[str]) -> float:
    chars = sum(len(t) for t in texts)
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return round(tokens / chars, 4) if chars else float("nan")


@torch.inference_mode()
def bits_per_char(model, tokenizer, texts: list[str], max_length: int = 512, batch_size: int = 8, desc: str = "bits/char") -> float:
    """Total NLL (bits) of every token of `texts` / number of characters.

    Each text starts after the BOS token (EOS when there is no BOS) so its first token is scored
    too; texts longer than `max_length` tokens are scored in consecutive windows, each window seeing
    the previous window's last token.
    """
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    windows = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids = [start, *ids]
        for i in range(0, len(ids) - 1, max_length):
            windows.append(ids[i : i + max_length + 1])
    windows.sort(key=len)  # similar lengths per batch: less padding
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_nats = 0.0
    model.eval()
    for b in tqdm(range(0, len(windows), batch_size), desc=desc, unit=" batches", leave=False):
        batch = windows[b : b + batch_size]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, w in enumerate(batch):
            ids[row, : len(w)] = torch.tensor(w)
            mask[row, : len(w)] = 1
        ids, mask = ids.to(device), mask.to(device)
        # Rows past the tokenizer are vocabulary padding: never a real token, so never in the softmax.
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, : len(tokenizer)].float()
        target = ids[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        total_nats += (nll * mask[:, 1:]).sum().item()
    chars = sum(len(t) for t in texts)
    return round(total_nats / math.log(2) / chars, 4)


def bpc_zh_en(model, tokenizer, zh: list[str], en: list[str], label: str) -> dict[str, float]:
    """{'bpc_en': ..., 'bpc_zh': ...} (zh only when held-out zh-TW text is given): what every stage reports."""
    out = {"bpc_en": bits_per_char(model, tokenizer, en, desc=f"bits/char en {label}")}
    if zh:
        out["bpc_zh"] = bits_per_char(model, tokenizer, zh, desc=f"bits/char zh {label}")
    return out
