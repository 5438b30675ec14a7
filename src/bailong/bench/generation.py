"""Local generation for the bench: the next assistant message of many conversations at once
(left-padded batches), and whole multi-turn conversations answered turn by turn."""

from __future__ import annotations

import torch


@torch.inference_mode()
def generate_batch(model, tok, conversations: list[list[dict]], gen_kwargs: dict) -> list[str]:
    """The next assistant message of each conversation, generated together (left-padded)."""
    side, tok.padding_side = tok.padding_side, "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    try:
        prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in conversations]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        out = model.generate(**enc, **gen_kwargs, pad_token_id=pad)
    finally:
        tok.padding_side = side
    # A reply cut off by max_new_tokens can end inside a character's bytes; that decodes to U+FFFD, not text.
    return [tok.decode(row, skip_special_tokens=True).rstrip("\ufffd").strip() for row in out[:, enc["input_ids"].shape[1]:]]


def answer(model, tok, conversations: list[list[str]], gen_kwargs: dict) -> list[list[str]]:
    """Answer each conversation's user turns in order, the earlier turns and the model's own answers kept
    as context; the conversations are generated together, turn by turn."""
    messages: list[list[dict]] = [[] for _ in conversations]
    for t in range(max(map(len, conversations))):
        live = [i for i, turns in enumerate(conversations) if t < len(turns)]
        for i in live:
            messages[i].append({"role": "user", "content": conversations[i][t]})
        for i, text in zip(live, generate_batch(model, tok, [messages[i] for i in live], gen_kwargs)):
            messages[i].append({"role": "assistant", "content": text})
    return [[m["content"] for m in conv if m["role"] == "assistant"] for conv in messages]
