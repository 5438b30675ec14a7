"""Chat data: reading and validating dialogues, the chat template, assistant-only labels."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Iterator

import torch

from bailong.config import BailongError
from bailong.pretrain.data import shuffled_batches

# ChatML with TRL-style {% generation %} markers around what the assistant says, so
# `return_assistant_tokens_mask` marks exactly the tokens the loss is taken on (content + <|im_end|>).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# Llama 2's [INST] format (system prompt folded into the first user turn), same markers: the loss
# covers " answer </s>" of every assistant turn.
LLAMA2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system = none %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{{- bos_token + '[INST] ' }}{%- if loop.first and system %}{{- '<<SYS>>\n' + system + '\n<</SYS>>\n\n' }}{%- endif %}"
    "{{- message['content'] + ' [/INST]' }}"
    "{%- else %}{% generation %}{{- ' ' + message['content'] + ' ' + eos_token }}{% endgeneration %}{%- endif %}"
    "{%- endfor %}"
)


def set_chat_template(tokenizer) -> str:
    """Install a chat template with generation markers; return its name.

    ChatML when the tokenizer has <|im_start|>/<|im_end|> (SmolLM2, Qwen), else Llama 2's [INST]
    format when it has BOS and EOS tokens (Llama 2, Mistral).
    """
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        tokenizer.chat_template = CHATML_TEMPLATE
        return "chatml"
    if tokenizer.bos_token and tokenizer.eos_token:
        tokenizer.chat_template = LLAMA2_TEMPLATE
        return "llama2"
    raise BailongError("sft: the tokenizer has neither ChatML tokens nor BOS/EOS tokens for an [INST] template")


def resolve_data(ref: str) -> Path:
    if ref == "builtin:demo-chat":
        return Path(str(resources.files("bailong") / "data" / "demo_chat.jsonl"))
    if ref.startswith("builtin:"):
        raise BailongError(f"unknown built-in chat data '{ref}' (known: builtin:demo-chat)")
    path = Path(ref)
    if not path.is_file():
        raise BailongError(f"sft data '{ref}' does not exist")
    return path


def validate(messages) -> str | None:
    """None if `messages` is a trainable dialogue, else the reason it is not."""
    if not isinstance(messages, list) or not messages:
        return "no messages"
    turns = messages[1:] if messages[0].get("role") == "system" else messages
    for i, m in enumerate(turns):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"unknown role {m.get('role') if isinstance(m, dict) else m!r}"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"empty content in message {i + 1}"
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            return f"two {m['role']} turns in a row"
    if not turns or turns[-1]["role"] != "assistant":
        return "does not end with an assistant turn"
    return None


def read_dialogues(path: Path) -> tuple[list[list[dict]], list[str]]:
    """(dialogues, problems as 'file:line: reason')."""
    dialogues, problems = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: malformed JSON ({exc.msg})")
                continue
            messages = row.get("messages") if isinstance(row, dict) else None
            reason = validate(messages)
            if reason:
                problems.append(f"{path}:{lineno}: {reason}")
            else:
                dialogues.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return dialogues, problems


def encode(dialogue: list[dict], tokenizer, max_length: int) -> tuple[dict, bool]:
    """input_ids and labels (-100 outside assistant turns), truncated to max_length; (example, truncated)."""
    enc = tokenizer.apply_chat_template(dialogue, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    labels = [t if m else -100 for t, m in zip(ids, mask)]
    truncated = len(ids) > max_length
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}, truncated


def chat_batches(examples: list[dict], batch_size: int, pad_id: int, seed: int) -> Iterator[dict]:
    """Endless shuffled, right-padded batches with attention masks."""
    for indices in shuffled_batches(len(examples), batch_size, seed):
        take = [examples[i] for i in indices]
        width = max(len(e["input_ids"]) for e in take)
        ids = torch.full((len(take), width), pad_id)
        labels = torch.full((len(take), width), -100)
        attn = torch.zeros((len(take), width), dtype=torch.long)
        for row, e in enumerate(take):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.tensor(e["labels"])
            attn[row, :n] = 1
        yield {"input_ids": ids, "labels": labels, "attention_mask": attn}
