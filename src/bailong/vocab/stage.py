"""vocab stage: learn zh-TW tokens and merge them into the base tokenizer, losslessly.

Writes ``tokenizer/`` (an HF tokenizer folder AutoTokenizer loads), ``new_tokens.tsv`` (each new
token with its id, text, frequency and how the OLD tokenizer splits it; the embed stage reads it)
and ``stats.json`` (tokens/char before and after on zh-TW and English text).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from bailong.config import BailongError, StageResult
from bailong.io import atomic_path, read_texts, write_json
from bailong.metrics import english_sample, tokens_per_char
from bailong.models import load_tokenizer, resolve_model
from bailong.vocab import bytelevel
from bailong.vocab.config import VocabConfig
from bailong.zh import han_count

log = logging.getLogger(__name__)
SUPPORTED = "byte-level BPE tokenizers (Llama 3, Qwen, GPT-2, SmolLM2)"


def _is_bytelevel(spec: dict) -> bool:
    def has_bytelevel(node) -> bool:
        if not node:
            return False
        if node.get("type") == "ByteLevel":
            return True
        return any(has_bytelevel(child) for child in node.get("pretokenizers", []))

    return spec["model"].get("type") == "BPE" and has_bytelevel(spec.get("pre_tokenizer"))


def check_supported(folder: Path) -> dict:
    """The base's tokenizer.json, or a clear error naming what is supported."""
    path = folder / "tokenizer.json"
    if not path.exists():
        raise BailongError(f"{folder} has no tokenizer.json; supported: {SUPPORTED}")
    spec = json.loads(path.read_text(encoding="utf-8"))
    kind = spec["model"].get("type")
    if kind != "BPE":
        raise BailongError(f"tokenizer kind {kind} in {folder} is not supported; supported: {SUPPORTED}")
    if not _is_bytelevel(spec):
        raise BailongError(
            f"{folder} is a SentencePiece-style BPE (byte fallback, no byte-level pre-tokenizer); "
            f"extending it is not supported yet; supported: {SUPPORTED}"
        )
    return spec


def learn_merges(spec: dict, texts: list[str], vocab_size: int, min_frequency: int) -> list[tuple[str, str]]:
    """Train a byte-level BPE with the base's normalizer and pre-tokenizer; return its merges in order."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    base = Tokenizer.from_str(json.dumps(spec))
    learner = Tokenizer(models.BPE())
    learner.normalizer = base.normalizer
    learner.pre_tokenizer = base.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    learner.train_from_iterator(texts, trainer=trainer, length=len(texts))
    merges = json.loads(learner.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def _printable(token: str) -> str:
    raw = bytelevel.symbols_to_bytes(token)
    text = raw.decode("utf-8", errors="backslashreplace")
    return text.replace("\t", "\\t").replace("\n", "\\n")


def run(cfg: VocabConfig) -> StageResult:
    if cfg.corpus is None:
        raise BailongError("vocab: 'corpus' is required (the corpus stage's train.jsonl)")
    base_dir = resolve_model(cfg.base_model)
    spec = check_supported(base_dir)
    texts = read_texts(cfg.corpus, cfg.max_train_chars)
    han = sum(han_count(t) for t in texts)
    if han == 0:
        raise BailongError(f"training corpus {cfg.corpus} has no Han characters; nothing zh-TW to learn")

    # Many learned merges are ASCII or already in the base; learn a generous surplus to pick from.
    merges = learn_merges(spec, texts, vocab_size=256 + 3 * cfg.new_tokens + 1000, min_frequency=cfg.min_frequency)
    model = spec["model"]
    base_size = max([*model["vocab"].values(), *(t["id"] for t in spec.get("added_tokens", []))]) + 1
    added = bytelevel.extend(model, merges, cfg.new_tokens, first_id=base_size)
    if len(added) < cfg.new_tokens:
        log.warning("vocab: asked for %d new tokens, the corpus supports %d; adding %d", cfg.new_tokens, len(added), len(added))

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "tokenizer") as tok_dir:
        tok_dir.mkdir()
        for f in base_dir.iterdir():
            if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens")) or f.name == "chat_template.jinja"):
                shutil.copy2(f, tok_dir / f.name)
        (tok_dir / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    old_tok, new_tok = load_tokenizer(base_dir), load_tokenizer(out / "tokenizer")
    if len(new_tok) != base_size + len(added):
        raise BailongError(f"extended tokenizer has {len(new_tok)} tokens, expected {base_size + len(added)}")

    # How often each new token is used on the training text (0: learned but never produced).
    freq: Counter[int] = Counter()
    for i in tqdm(range(0, len(texts), 256), desc="vocab frequencies", unit=" batches"):
        for ids in new_tok(texts[i : i + 256], add_special_tokens=False)["input_ids"]:
            freq.update(t for t in ids if t >= base_size)
    rows = ["id\ttoken\ttext\tfrequency\told_ids\told_pieces\tintermediate"]
    for t in added:
        old_ids = [model["vocab"][p] for p in t.old_pieces]
        rows.append(
            f"{t.id}\t{t.token}\t{_printable(t.token)}\t{freq[t.id]}\t{' '.join(map(str, old_ids))}\t"
            f"{' | '.join(_printable(p) for p in t.old_pieces)}\t{int(t.intermediate)}"
        )
    with atomic_path(out / "new_tokens.tsv") as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")

    stats = {
        "kind": "byte-level BPE",
        "base_vocab_size": base_size,
        "new_tokens_requested": cfg.new_tokens,
        "new_tokens_added": len(added),
        "intermediate_tokens": sum(t.intermediate for t in added),
        "unused_new_tokens": sum(1 for t in added if freq[t.id] == 0),
        "vocab_size": len(new_tok),
        "train_chars": sum(map(len, texts)),
        "train_han_chars": han,
    }
    evals = {"en": [english_sample(cfg.eval_chars)]}
    if cfg.eval_corpus:
        evals["zh"] = read_texts(cfg.eval_corpus, cfg.eval_chars)
    for lang, sample in evals.items():
        stats[f"tokens_per_char_{lang}_before"] = tokens_per_char(old_tok, sample)
        stats[f"tokens_per_char_{lang}_after"] = tokens_per_char(new_tok, sample)
        lossless = sum(new_tok.decode(new_tok(s, add_special_tokens=False)["input_ids"]) == s for s in sample)
        stats[f"lossless_{lang}"] = f"{lossless}/{len(sample)}"
    write_json(out / "stats.json", stats)
    log.info("vocab: %d -> %d tokens; %s", base_size, len(new_tok), {k: v for k, v in stats.items() if "per_char" in k})
    return StageResult(
        {"tokenizer": out / "tokenizer", "new_tokens": out / "new_tokens.tsv", "stats": out / "stats.json"}, stats
    )
