"""Text generation shared by `bailong chat` and `bailong serve`: sampling settings, prompt encoding,
and streaming through transformers' TextIteratorStreamer (generate runs in a thread and the caller
iterates over text pieces as they are decoded).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from bailong.config import BailongError


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. Defaults are Bailong's published ones (temperature 0.6, top-p 0.9, top-k 40,
    repetition penalty 1.1); temperature 0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def with_overrides(self, **values) -> Sampling:
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def generate_kwargs(self, tok) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                  "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id}
        if self.temperature > 0:
            kwargs |= {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        else:
            kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if self.stop:
            kwargs |= {"stop_strings": list(self.stop), "tokenizer": tok}
        return kwargs


@dataclass
class Finished:
    """Filled in once a generation ends: token counts and why it stopped ("stop" or "length")."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    text: str = ""
    error: BaseException | None = field(default=None, repr=False)


def load(model_dir: Path):
    """(model, tokenizer, context length) of a merged model folder, in eval mode."""
    from bailong.models import load_model, load_tokenizer, resolve_model

    path = resolve_model(model_dir)
    if not (path / "config.json").exists():
        raise BailongError(f"{path} is not a model folder (no config.json); pass a stage's model/ folder")
    model, tok = load_model(path), load_tokenizer(path)
    model.eval()
    context = getattr(model.config, "max_position_embeddings", None) or tok.model_max_length
    return model, tok, int(context)


def chat_ids(tok, messages: list[dict]) -> list[int]:
    if not tok.chat_template:
        raise BailongError("the model has no chat template (it was not chat-tuned); use plain completions")
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return list(enc["input_ids"])


def text_ids(tok, prompt: str) -> list[int]:
    return tok(prompt)["input_ids"]


def stream(model, tok, prompt_ids: list[int], sampling: Sampling, done: Finished) -> Iterator[str]:
    """Yield the completion's text piece by piece; `done` holds the counts once the iterator ends.

    Stop strings end generation (transformers' StoppingCriteria) and are cut from the text, as
    OpenAI does."""
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    input_ids = torch.tensor([prompt_ids], device=model.device)
    result: dict = {}

    def work() -> None:
        try:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            with torch.inference_mode():
                result["ids"] = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                               streamer=streamer, **sampling.generate_kwargs(tok))
        except BaseException as exc:  # surfaced to the caller below, never lost in the thread
            done.error = exc
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    held = ""  # text held back while it could still be the start of a stop string
    for piece in streamer:
        held += piece
        cut = min((held.find(s) for s in sampling.stop if s in held), default=-1)
        if cut >= 0:
            held = held[:cut]
            break
        keep = max((_partial_suffix(held, s) for s in sampling.stop), default=0)
        out, held = held[: len(held) - keep], held[len(held) - keep :]
        if out:
            done.text += out
            yield out
    if held:
        done.text += held
        yield held
    thread.join()
    if done.error is not None:
        raise done.error
    new = result["ids"][0, len(prompt_ids):].tolist()
    done.prompt_tokens, done.completion_tokens = len(prompt_ids), len(new)
    stopped = (new and new[-1] in _eos_ids(model, tok)) or any(s in tok.decode(new, skip_special_tokens=True) for s in sampling.stop)
    done.finish_reason = "stop" if stopped or len(new) < sampling.max_new_tokens else "length"


def _partial_suffix(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def _eos_ids(model, tok) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | ({tok.eos_token_id} if tok.eos_token_id is not None else set())


def complete(model, tok, prompt_ids: list[int], sampling: Sampling) -> Finished:
    done = Finished()
    for _ in stream(model, tok, prompt_ids, sampling, done):
        pass
    return done
