"""Tokenizers side by side: tokens per character and the share of partial-character tokens.

A partial-character token is a SentencePiece byte-fallback piece (<0xE8>) or a byte-level token
that is not a whole UTF-8 character sequence: both mean the tokenizer does not know the character.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bailong.io import write_text
from bailong.models import load_tokenizer
from bailong.vocab.bytelevel import symbols_to_bytes

_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def _is_bytelevel(tokenizer) -> bool:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    return "ByteLevel" in json.dumps(spec.get("pre_tokenizer"))


def _partial(token: str, bytelevel: bool) -> bool:
    if not bytelevel:
        return bool(_BYTE_PIECE.match(token))
    try:
        symbols_to_bytes(token).decode("utf-8")
        return False
    except (KeyError, UnicodeDecodeError):
        return True


def measure(tokenizer, lines: list[str]) -> dict[str, float]:
    """{'tokens_per_char', 'partial_share', 'tokens'} over `lines` (no special tokens)."""
    bytelevel = _is_bytelevel(tokenizer)
    ids = [i for enc in tokenizer(lines, add_special_tokens=False)["input_ids"] for i in enc]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    chars = sum(map(len, lines))
    partial = sum(_partial(t, bytelevel) for t in tokens)
    return {"tokens_per_char": round(len(ids) / chars, 4) if chars else float("nan"),
            "partial_share": round(partial / len(ids), 4) if ids else 0.0, "tokens": len(ids)}


def compare(tokenizers: dict[str, Path], texts: dict[str, list[str]]) -> list[dict]:
    rows = []
    for name, path in tokenizers.items():
        tok = load_tokenizer(path)
        row = {"tokenizer": name, "vocab": len(tok)}
        for label, lines in texts.items():
            m = measure(tok, lines)
            row[f"{label} tokens/char"] = m["tokens_per_char"]
            row[f"{label} partial-char share"] = m["partial_share"]
        rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c for c in rows[0] if c.endswith("tokens/char")]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics) * len(rows) / 2, 3.6))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        bars = ax.bar([i + k * width for i in range(len(metrics))], [row[m] for m in metrics], width, label=row["tokenizer"])
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(metrics))], metrics)
    ax.set_ylabel("tokens per character (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "vocab_stats.md", to_markdown(rows))
    plot(rows, out / "vocab_stats.png")
    return out / "vocab_stats.md", out / "vocab_stats.png"
