"""Chat data: reading and validating dialogues, the chat template, assistant-only labels."""

from __future__ import annotations

import bisect
import json
import re
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

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
    """Install a chat template with generation markers unless the tokenizer has one; return its name.

    A template the tokenizer already carries is kept when it marks the assistant's text with
    ``{% generation %}`` (the exact assistant-only loss needs the markers): "base". Otherwise ChatML
    when the tokenizer has <|im_start|>/<|im_end|> (SmolLM2, Qwen), else Llama 2's [INST] format
    when it has BOS and EOS tokens (Llama 2, Mistral).
    """
    current = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if re.search(r"{%-?\s*generation\s*-?%}", current) and current not in (CHATML_TEMPLATE, LLAMA2_TEMPLATE):
        return "base"
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
    turns = messages[1:] if isinstance(messages[0], dict) and messages[0].get("role") == "system" else messages
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


def read_rows(path: Path, convert: Callable[[object], tuple[object, str | None]]) -> tuple[list[tuple[str, object]], list[str]]:
    """([('file:line', item)], problems as 'file:line: reason') of a JSONL file; `convert(row)` -> (item, None) or (None, reason)."""
    items, problems = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: malformed JSON ({exc.msg})")
                continue
            item, reason = convert(row)
            if reason:
                problems.append(f"{path}:{lineno}: {reason}")
            else:
                items.append((f"{path}:{lineno}", item))
    return items, problems


# ShareGPT speaker names (from) -> chat roles.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant"}


def to_messages(row) -> tuple[list[dict] | None, str | None]:
    """A dialogue from one JSONL row in any of the common formats, or the reason it is not one.

    OpenAI ``messages`` (role/content), ShareGPT ``conversations`` (from/value, optional ``system``)
    and Alpaca ``instruction``/``input``/``output`` (optional ``system``) are recognized per row.
    """
    if not isinstance(row, dict):
        return None, "not a JSON object"
    if "messages" in row:
        messages = row["messages"]
    elif "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            return None, "conversations is not a list of {from, value} turns"
        unknown = next((t.get("from") for t in turns if t.get("from") not in SHAREGPT_ROLES), None)
        if unknown is not None or any("from" not in t for t in turns):
            return None, f"unknown role {unknown!r}"
        messages = [{"role": SHAREGPT_ROLES[t["from"]], "content": t.get("value")} for t in turns]
    elif "instruction" in row and "output" in row:
        if not all(isinstance(row.get(k, ""), str) for k in ("instruction", "input", "output")):
            return None, "instruction, input and output must be strings"
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input", "").strip() else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    else:
        return None, "no messages, conversations (ShareGPT) or instruction/output (Alpaca) field"
    if isinstance(row.get("system"), str) and row["system"].strip() and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": row["system"]}, *messages]
    reason = validate(messages)
    if reason:
        return None, reason
    return [{"role": m["role"], "content": m["content"]} for m in messages], None


def read_dialogues(path: Path) -> tuple[list[tuple[str, list[dict]]], list[str]]:
    """([('file:line', dialogue)], problems as 'file:line: reason') of a JSONL file of messages, ShareGPT or Alpaca rows."""
    return read_rows(path, to_messages)


def encode(dialogue: list[dict], tokenizer, max_length: int) -> tuple[dict, int]:
    """(input_ids and labels (-100 outside assistant turns) truncated to max_length, the untruncated length)."""
    enc = tokenizer.apply_chat_template(dialogue, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    labels = [t if m else -100 for t, m in zip(ids, mask)]
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}, len(ids)


def pack_dialogues(examples: list[dict], max_length: int) -> list[dict]:
    """Encoded dialogues packed into rows of at most `max_length` tokens (best fit, longest first).

    Each row carries position ids that restart at every dialogue, which transformers reads as packed
    sequences and masks attention across (as in pretraining), so a dialogue never sees its row-mates.
    """
    rows: list[dict] = []
    space: list[tuple[int, int]] = []  # (free tokens, row index), sorted
    for i in sorted(range(len(examples)), key=lambda i: (-len(examples[i]["input_ids"]), i)):
        ex, n = examples[i], len(examples[i]["input_ids"])
        at = bisect.bisect_left(space, (n, -1))
        if at == len(space):
            rows.append({"input_ids": [], "labels": [], "position_ids": []})
            free, r = max_length, len(rows) - 1
        else:
            free, r = space.pop(at)
        rows[r]["input_ids"] += ex["input_ids"]
        rows[r]["labels"] += ex["labels"]
        rows[r]["position_ids"] += range(n)
        bisect.insort(space, (free - n, r))
    return rows


def collate(take: list[dict], pad_id: int) -> dict:
    """Right-padded tensors: with an attention mask, or for packed rows with position ids (padding is a sequence of its own)."""
    width = max(len(e["input_ids"]) for e in take)
    ids = torch.full((len(take), width), pad_id)
    labels = torch.full((len(take), width), -100)
    attn = torch.zeros((len(take), width), dtype=torch.long)
    pos = torch.zeros((len(take), width), dtype=torch.long)
    for row, e in enumerate(take):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        attn[row, :n] = 1
        if "position_ids" in e:
            pos[row, :n] = torch.tensor(e["position_ids"])
            pos[row, n:] = torch.arange(width - n)
    if "position_ids" in take[0]:
        return {"input_ids": ids, "labels": labels, "position_ids": pos}
    return {"input_ids": ids, "labels": labels, "attention_mask": attn}


def chat_batches(examples: list[dict], batch_size: int, pad_id: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> Iterator[dict]:
    """Endless shuffled, right-padded batches (see `collate`): process `rank`'s slice of each global batch."""
    for indices in shuffled_batches(len(examples), batch_size * world_size, seed):
        yield collate([examples[i] for i in indices[rank * batch_size:(rank + 1) * batch_size]], pad_id)


@torch.no_grad()
def assistant_loss(model, examples: list[dict], pad_id: int, batch_size: int = 8) -> float:
    """Mean negative log-likelihood (nats) per assistant token of `examples`: the held-out SFT loss."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[i:i + batch_size], pad_id).items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        if n:
            total += model(**batch, use_cache=False).loss.item() * n
            count += n
    return round(total / count, 4) if count else float("nan")
