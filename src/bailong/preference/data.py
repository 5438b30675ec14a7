"""Preference pairs: reading TRL's formats, validating them, and the built-in demo pairs."""

from __future__ import annotations

from pathlib import Path

from bailong.config import BailongError
from bailong.sft.data import read_dialogues, read_rows, resolve_data, validate


def _as_messages(value, role: str):
    return [{"role": role, "content": value}] if isinstance(value, str) else value


def to_pair(row) -> tuple[dict | None, str | None]:
    """{'prompt': messages, 'chosen': [answer], 'rejected': [answer]} from one row, or the reason it is not a pair.

    Accepted, as TRL names them: explicit prompt (``prompt``/``chosen``/``rejected``, each a string
    or a message list) and implicit prompt (``chosen``/``rejected`` whole conversations that share
    everything but their last, assistant, message).
    """
    if not isinstance(row, dict):
        return None, "not a JSON object"
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        return None, f"no '{missing[0]}' field"
    prompt, chosen, rejected = row.get("prompt"), row["chosen"], row["rejected"]
    if prompt is None:
        if not (isinstance(chosen, list) and isinstance(rejected, list) and chosen and rejected):
            return None, "no prompt, and chosen/rejected are not conversations"
        if chosen[:-1] != rejected[:-1]:
            return None, "chosen and rejected conversations differ before their last message"
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
    prompt, chosen, rejected = _as_messages(prompt, "user"), _as_messages(chosen, "assistant"), _as_messages(rejected, "assistant")
    if not isinstance(prompt, list):
        return None, "prompt is neither a string nor a message list"
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(answer, list) or len(answer) != 1:
            return None, f"{name} is not one answer"
        reason = validate([*prompt, *answer])
        if reason:
            return None, f"{name}: {reason}"
    if chosen[0]["content"] == rejected[0]["content"]:
        return None, "chosen and rejected are the same answer"
    keep = ("role", "content")
    return {k: [{f: m[f] for f in keep} for m in v] for k, v in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected))}, None


def demo_pairs() -> tuple[list[tuple[str, dict]], list[str]]:
    """Each demo-chat dialogue's last answer (chosen) against the same answer in Simplified Chinese (rejected).

    The rejected side is OpenCC's tw2sp conversion (mainland characters and phrases): exactly what
    the bench's Traditional Chinese gate scores 0, so the pairs teach the preference the gate checks.
    """
    from bailong.zh import to_simplified

    pairs, problems = [], []
    dialogues, _ = read_dialogues(resolve_data("builtin:demo-chat"))
    for where, dialogue in dialogues:
        answer = dialogue[-1]["content"]
        pair, reason = to_pair({"prompt": dialogue[:-1], "chosen": answer, "rejected": to_simplified(answer)})
        if reason:
            problems.append(f"{where}: {reason}")
        else:
            pairs.append((where, pair))
    return pairs, problems


def load_pairs(ref: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """([('file:line', pair)], problems as 'file:line: reason') for a JSONL path or builtin:demo-preference."""
    if ref == "builtin:demo-preference":
        return demo_pairs()
    if ref.startswith("builtin:"):
        raise BailongError(f"unknown built-in preference data '{ref}' (known: builtin:demo-preference)")
    path = Path(ref)
    if not path.is_file():
        raise BailongError(f"preference data '{ref}' does not exist")
    return read_rows(path, to_pair)
