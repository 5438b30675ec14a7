"""`bailong chat`: multi-turn chat with a model folder in the terminal, streaming each reply.

Commands inside the chat: /reset (forget the conversation), /save [FILE] (write it as an OpenAI
`messages` JSON line, the format the sft stage reads), /system TEXT (replace the system prompt and
reset), /help, /quit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from bailong.config import BailongError
from bailong.serve.generate import Finished, Sampling, chat_ids, stream

HELP = "/reset clears the conversation, /save [FILE] writes it as JSONL, /system TEXT sets the system prompt, /quit exits"


def repl(model, tok, context_length: int, sampling: Sampling, system: str | None = None,
         read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> list[dict]:
    """Run the conversation loop until /quit or end of input; return the last conversation."""
    if not tok.chat_template:
        raise BailongError("chat: the model has no chat template (it was not chat-tuned); pass an sft or preference model/")
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    write(f"bailong chat: {HELP}")
    while True:
        try:
            line = read("> ").strip()
        except EOFError:
            break
        if line in ("/quit", "/exit"):
            break
        if line == "/help":
            write(HELP)
            continue
        if line == "/reset":
            history = list(start)
            write("(conversation cleared)")
            continue
        if line.startswith("/system"):
            text = line[len("/system"):].strip()
            start = [{"role": "system", "content": text}] if text else []
            history = list(start)
            write(f"(system prompt {'set' if text else 'removed'}; conversation cleared)")
            continue
        if line.startswith("/save"):
            write(f"(saved to {save(history, line[len('/save'):].strip() or None)})")
            continue
        if not line or line.startswith("/"):
            if line:
                write(f"unknown command {line}; {HELP}")
            continue
        history.append({"role": "user", "content": line})
        ids = chat_ids(tok, history)
        if len(ids) >= context_length:
            history.pop()
            write(f"(the conversation is {len(ids)} tokens, over the model's {context_length}: /reset to start again)")
            continue
        done = Finished()
        budget = sampling.with_overrides(max_new_tokens=min(sampling.max_new_tokens, context_length - len(ids)))
        for piece in stream(model, tok, ids, budget, done):
            write_piece(write, piece)
        write_piece(write, "\n")
        history.append({"role": "assistant", "content": done.text.strip()})
    return history


def write_piece(write: Callable[[str], None], piece: str) -> None:
    if write is print:
        print(piece, end="", flush=True)
    else:
        write(piece)


def save(history: list[dict], path: str | None) -> Path:
    """Append the conversation as one `{"messages": [...]}` line (the sft stage reads this format)."""
    target = Path(path) if path else Path(f"chat-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps({"messages": history}, ensure_ascii=False) + "\n")
    return target
