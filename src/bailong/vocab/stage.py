"""vocab stage: learn zh-TW tokens and merge them into the base tokenizer, losslessly.

Two steps with a readable file between them:
  train:  corpus -> ``learned.txt`` (the target vocabulary, one JSON string per line, best first)
  extend: base tokenizer + coverage characters + learned.txt -> ``tokenizer/`` (an HF folder that
          AutoTokenizer loads; plus tokenizer.model for SentencePiece bases), ``new_tokens.tsv``
          (id, token, text, frequency, origin, old ids and pieces: the embed stage reads it) and
          ``stats.json`` (tokens/char before and after, round trips, HF/sentencepiece agreement).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from bailong.config import BailongError, StageResult
from bailong.io import atomic_path, read_texts, write_json, write_text
from bailong.metrics import english_sample, tokens_per_char
from bailong.models import load_tokenizer, resolve_model
from bailong.vocab import bytelevel, sentencepiece
from bailong.vocab.config import VocabConfig
from bailong.vocab.coverage import coverage_chars
from bailong.zh import han_count

log = logging.getLogger(__name__)
SUPPORTED = "byte-level BPE (Llama 3, Qwen, GPT-2, SmolLM2) and SentencePiece BPE (Llama 2, Mistral)"
LEARNED_HEADER = "# bailong learned tokens v1"


def detect_kind(folder: Path) -> str:
    """'sentencepiece' or 'bytelevel', or a clear error naming what is supported."""
    if (folder / "tokenizer.model").exists():
        sentencepiece.check_bpe(sentencepiece.load_proto(folder / "tokenizer.model"), folder)
        return "sentencepiece"
    path = folder / "tokenizer.json"
    if not path.exists():
        raise BailongError(f"{folder} has no tokenizer.json or tokenizer.model; supported: {SUPPORTED}")
    spec = json.loads(path.read_text(encoding="utf-8"))
    kind = spec["model"].get("type")
    if kind != "BPE":
        raise BailongError(f"tokenizer kind {kind} in {folder} is not supported; supported: {SUPPORTED}")

    def has_bytelevel(node) -> bool:
        return bool(node) and (node.get("type") == "ByteLevel" or any(map(has_bytelevel, node.get("pretokenizers", []))))

    if not has_bytelevel(spec.get("pre_tokenizer")):
        raise BailongError(f"{folder} is a BPE without a byte-level pre-tokenizer or tokenizer.model; supported: {SUPPORTED}")
    return "bytelevel"


def _training_texts(cfg: VocabConfig) -> list[str]:
    if cfg.corpus is None:
        raise BailongError("vocab: 'corpus' is required (the corpus stage's train.jsonl)")
    texts = read_texts(cfg.corpus, cfg.max_train_chars)
    if not texts or sum(han_count(t) for t in texts) == 0:
        raise BailongError(f"training corpus {cfg.corpus} has no Han characters; nothing zh-TW to learn")
    return texts


def train(cfg: VocabConfig, texts: list[str] | None = None) -> Path:
    """Learn the target vocabulary; write and return ``out_dir/learned.txt``."""
    base_dir = resolve_model(cfg.base_model)
    kind = detect_kind(base_dir)
    texts = texts if texts is not None else _training_texts(cfg)
    # Many learned tokens are ASCII or already in the base; learn a surplus to choose from.
    if kind == "sentencepiece":
        base = sentencepiece.load_proto(base_dir / "tokenizer.model")
        learned = sentencepiece.learn(base, texts, int(1.5 * cfg.new_tokens) + 1000, cfg.max_piece_chars, cfg.seed)
    else:  # byte-level: many learned merges are partial characters or ASCII
        spec = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))
        learned = bytelevel.learn(spec, texts, 256 + 3 * cfg.new_tokens + 1000, cfg.min_frequency, cfg.max_piece_chars)
    lines = [f"{LEARNED_HEADER} kind={kind}", *(json.dumps(t, ensure_ascii=False) for t in learned)]
    return write_text(cfg.out_dir / "learned.txt", "\n".join(lines) + "\n")


def read_learned(path: Path, kind: str) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != f"{LEARNED_HEADER} kind={kind}":
        raise BailongError(f"{path} is not a learned.txt for a {kind} tokenizer (first line: {lines[0] if lines else ''!r})")
    return [json.loads(line) for line in lines[1:]]


def _by_frequency(chars: list[str], texts: list[str]) -> list[str]:
    """Coverage characters, most frequent in the corpus first (the budget may not fit them all)."""
    counts = Counter(c for t in texts for c in t)
    return sorted(chars, key=lambda c: -counts[c])


def extend(cfg: VocabConfig, learned_path: Path, texts: list[str] | None = None) -> StageResult:
    base_dir = resolve_model(cfg.base_model)
    kind = detect_kind(base_dir)
    texts = texts if texts is not None else _training_texts(cfg)
    learned = read_learned(learned_path, kind)
    chars = _by_frequency(coverage_chars(cfg.coverage, cfg.coverage_file), texts)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"kind": kind}

    with atomic_path(out / "tokenizer") as tok_dir:
        if kind == "sentencepiece":
            proto = sentencepiece.load_proto(base_dir / "tokenizer.model")
            base_size = len(proto.pieces)
            added = sentencepiece.extend(proto, [(c, "coverage") for c in chars] + [(t, "learned") for t in learned], cfg.new_tokens)
            stats["unreachable_new_tokens"] = sentencepiece.unreachable(proto, added)
            sentencepiece.save_hf(proto, base_dir, tok_dir)
            show = lambda token: token.replace("▁", " ")  # noqa: E731
        else:
            spec = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))
            model = spec["model"]
            base_size = max([*model["vocab"].values(), *(t["id"] for t in spec.get("added_tokens", []))]) + 1
            targets = [(bytelevel.text_to_symbols(c), "coverage") for c in chars] + [(t, "learned") for t in learned]
            added = bytelevel.extend(model, targets, cfg.new_tokens, first_id=base_size)
            tok_dir.mkdir()
            for f in base_dir.iterdir():
                if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens")) or f.name == "chat_template.jinja"):
                    shutil.copy2(f, tok_dir / f.name)
            (tok_dir / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
            show = bytelevel.printable
    if len(added) < cfg.new_tokens:
        log.warning("vocab: asked for %d new tokens, the corpus supports %d; adding %d", cfg.new_tokens, len(added), len(added))

    old_tok, new_tok = load_tokenizer(base_dir), load_tokenizer(out / "tokenizer")
    if len(new_tok) != len(old_tok) + len(added):
        raise BailongError(f"extended tokenizer has {len(new_tok)} tokens, expected {len(old_tok)} + {len(added)}")
    old_vocab = old_tok.get_vocab()
    freq: Counter[int] = Counter()
    for i in tqdm(range(0, len(texts), 256), desc="vocab frequencies", unit=" batches"):
        for ids in new_tok(texts[i : i + 256], add_special_tokens=False)["input_ids"]:
            freq.update(t for t in ids if t >= base_size)
    rows = ["id\ttoken\ttext\tfrequency\torigin\told_ids\told_pieces"]
    for t in added:
        old_ids = " ".join(str(old_vocab[p]) for p in t.old_pieces)
        rows.append(f"{t.id}\t{t.token}\t{show(t.token)}\t{freq[t.id]}\t{t.origin}\t{old_ids}\t{' | '.join(map(show, t.old_pieces))}")
    write_text(out / "new_tokens.tsv", "\n".join(rows) + "\n")

    origins = Counter(t.origin for t in added)
    stats |= {
        "base_vocab_size": len(old_tok),
        "new_tokens_requested": cfg.new_tokens,
        "new_tokens_added": len(added),
        "coverage_tokens": origins["coverage"],
        "learned_tokens": origins["learned"],
        "intermediate_tokens": origins["intermediate"],
        "unused_new_tokens": sum(1 for t in added if freq[t.id] == 0),
        "vocab_size": len(new_tok),
        "train_chars": sum(map(len, texts)),
    }
    stats |= evaluate(old_tok, new_tok, base_dir, out / "tokenizer", kind, cfg)
    write_json(out / "stats.json", stats)
    log.info("vocab: %d -> %d tokens; %s", len(old_tok), len(new_tok), {k: v for k, v in stats.items() if "per_char" in k})
    return StageResult({"tokenizer": out / "tokenizer", "new_tokens": out / "new_tokens.tsv", "learned": learned_path,
                        "stats": out / "stats.json"}, stats)


def evaluate(old_tok, new_tok, base_dir: Path, new_dir: Path, kind: str, cfg: VocabConfig) -> dict:
    """Tokens/char before/after, round trips, and (SentencePiece) HF vs sentencepiece id agreement."""
    stats: dict = {}
    samples = {"en": english_sample(cfg.eval_chars).split("\n")}
    if cfg.eval_corpus:
        samples["zh"] = [line for t in read_texts(cfg.eval_corpus, cfg.eval_chars) for line in t.split("\n") if line]
    proc = sentencepiece.processor(sentencepiece.load_proto(new_dir / "tokenizer.model")) if kind == "sentencepiece" else None
    for lang, lines in samples.items():
        stats[f"tokens_per_char_{lang}_before"] = tokens_per_char(old_tok, lines)
        stats[f"tokens_per_char_{lang}_after"] = tokens_per_char(new_tok, lines)
        ok = sum(new_tok.decode(new_tok(s, add_special_tokens=False)["input_ids"]) == s for s in lines)
        stats[f"lossless_{lang}"] = f"{ok}/{len(lines)}"
        if proc is not None:
            same = sum(new_tok(s, add_special_tokens=False)["input_ids"] == proc.encode(s) for s in lines)
            stats[f"hf_matches_sentencepiece_{lang}"] = f"{same}/{len(lines)}"
    return stats


def run(cfg: VocabConfig) -> StageResult:
    texts = _training_texts(cfg)  # read once for both steps
    learned = cfg.learned if cfg.learned is not None else train(cfg, texts)
    return extend(cfg, learned, texts)
