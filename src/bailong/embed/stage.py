"""embed stage: resize the base for the extended tokenizer and initialize the new rows.

Writes ``model/`` (safetensors + the extended tokenizer + ``bailong_embed.json`` saying which ids
are new) and ``stats.json`` with bits/char of the base and of the initialized model.
"""

from __future__ import annotations

import logging

import torch

from bailong.config import BailongError, StageResult
from bailong.embed.config import EmbedConfig
from bailong.embed.zip_tie import init_rows, read_new_tokens
from bailong.io import atomic_path, read_texts, write_json
from bailong.metrics import bpc_zh_en, english_sample
from bailong.models import load_model, load_tokenizer, resolve_model

log = logging.getLogger(__name__)


def check_ids_kept(old_tok, new_tok) -> None:
    """Refuse a tokenizer whose old ids differ from the base's: rows are looked up by id."""
    new_vocab = new_tok.get_vocab()
    shifted = [t for t, i in old_tok.get_vocab().items() if new_vocab.get(t) != i]
    if shifted:
        raise BailongError(
            f"the extended tokenizer changes the ids of {len(shifted)} base tokens (e.g. {shifted[0]!r}): "
            "ids are shifted, so its rows would not match the model's"
        )


def run(cfg: EmbedConfig) -> StageResult:
    if cfg.tokenizer is None or cfg.new_tokens is None:
        raise BailongError("embed: 'tokenizer' and 'new_tokens' are required (the vocab stage's outputs)")
    base_dir = resolve_model(cfg.base_model)
    model = load_model(base_dir)
    old_tok, new_tok = load_tokenizer(base_dir), load_tokenizer(cfg.tokenizer)
    check_ids_kept(old_tok, new_tok)
    rows = read_new_tokens(cfg.new_tokens)
    n_old = len(old_tok)
    bad = [r.id for r in rows if not n_old <= r.id < len(new_tok)]
    if bad:
        raise BailongError(f"{cfg.new_tokens}: new token id {bad[0]} is outside [{n_old}, {len(new_tok)})")

    zh = read_texts(cfg.eval_corpus, cfg.eval_chars) if cfg.eval_corpus else []
    en = [english_sample(cfg.eval_chars)]
    stats: dict = {"method": cfg.method, "base_vocab_size": n_old, "new_rows": len(rows)}
    stats["base"] = bpc_zh_en(model, old_tok, zh, en, "base")

    tied = bool(model.config.tie_word_embeddings)
    model.resize_token_embeddings(max(len(new_tok), model.get_input_embeddings().weight.shape[0]), mean_resizing=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        fallbacks = init_rows(model.get_input_embeddings().weight, rows, cfg.method, n_old, std, gen)
        if not tied:
            init_rows(model.get_output_embeddings().weight, rows, cfg.method, n_old, std, gen)
    if tied and model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise BailongError("resizing untied embed_tokens and lm_head of a tied model")
    stats["fallback_to_mean"] = fallbacks
    stats["init"] = bpc_zh_en(model, new_tok, zh, en, cfg.method)

    out = cfg.out_dir
    with atomic_path(out / "model") as folder:
        model.save_pretrained(folder)
        new_tok.save_pretrained(folder)
        write_json(folder / "bailong_embed.json", {
            "method": cfg.method, "base_vocab_size": n_old, "vocab_size": len(new_tok), "tied": tied,
            "new_token_ids": sorted(r.id for r in rows), "fallback_to_mean": fallbacks,
        })
    write_json(out / "stats.json", stats)
    log.info("embed: %s init, bits/char base %s -> init %s", cfg.method, stats["base"], stats["init"])
    return StageResult({"model": out / "model", "stats": out / "stats.json"}, stats)
