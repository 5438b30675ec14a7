"""embed stage: resize the base for the extended tokenizer and initialize the new rows.

Writes ``model/`` (safetensors + the extended tokenizer + ``bailong_embed.json`` saying which ids
are new and which are padding) and ``stats.json`` with bits/char of the base and of the initialized
model (and, for zip-tie-learned, the fit's R^2 on held-out characters).
"""

from __future__ import annotations

import logging
import math

import torch

from bailong.config import BailongError, StageResult
from bailong.embed import methods
from bailong.embed.config import EmbedConfig
from bailong.embed.fit import fit_lm
from bailong.embed.decompose import decomposer, read_new_tokens
from bailong.io import atomic_path, read_texts, write_json
from bailong.metrics import bpc_zh_en, english_sample
from bailong.models import load_model, load_tokenizer, resolve_model
from bailong.vocab.stage import detect_kind

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


class Prepared:
    """Everything the methods need, loaded once: base model, both tokenizers, new rows, eval text."""

    def __init__(self, cfg: EmbedConfig):
        if cfg.tokenizer is None or cfg.new_tokens is None:
            raise BailongError("embed: 'tokenizer' and 'new_tokens' are required (the vocab stage's outputs)")
        self.base_dir = resolve_model(cfg.base_model)
        self.old_tok, self.new_tok = load_tokenizer(self.base_dir), load_tokenizer(cfg.tokenizer)
        check_ids_kept(self.old_tok, self.new_tok)
        kind = detect_kind(cfg.tokenizer)
        self.rows = read_new_tokens(cfg.new_tokens, kind)
        self.n_old = len(self.old_tok)
        bad = [r.id for r in self.rows if not self.n_old <= r.id < len(self.new_tok)]
        if bad:
            raise BailongError(f"{cfg.new_tokens}: new token id {bad[0]} is outside [{self.n_old}, {len(self.new_tok)})")
        self.dec = decomposer(self.old_tok.get_vocab(), kind)
        self.zh = read_texts(cfg.eval_corpus, cfg.eval_chars) if cfg.eval_corpus else []
        # Cut to fit_chars exactly: one long document must not turn a small fit into a slow one.
        fit_text = "\n\n".join(read_texts(cfg.fit_corpus, cfg.fit_chars)) if cfg.fit_corpus else ""
        self.fit_texts = [fit_text[: cfg.fit_chars]] if fit_text else []
        self.en = [english_sample(cfg.eval_chars)]

    def base_model(self):
        return load_model(self.base_dir, dtype="auto")


def initialize(model, prep: Prepared, cfg: EmbedConfig) -> dict:
    """Resize `model` in place and fill its new rows with cfg.method; return what was done."""
    rows_needed = len(prep.new_tok)
    if cfg.pad_to_multiple_of:
        rows_needed = math.ceil(rows_needed / cfg.pad_to_multiple_of) * cfg.pad_to_multiple_of
    current = model.get_input_embeddings().weight.shape[0]
    if current > prep.n_old and current > len(prep.new_tok):
        log.warning("embed: the base already has %d rows for %d tokens; its extra rows are reused", current, prep.n_old)
    tied = bool(model.config.tie_word_embeddings)
    model.resize_token_embeddings(max(rows_needed, current), mean_resizing=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    std = getattr(model.config, "initializer_range", 0.02)
    pad_ids = list(range(len(prep.new_tok), model.get_input_embeddings().weight.shape[0]))
    info: dict = {"method": cfg.method, "base_vocab_size": prep.n_old, "vocab_size": len(prep.new_tok), "tied": tied,
                  "new_token_ids": [r.id for r in prep.rows], "pad_ids": pad_ids}
    if cfg.method == "zip-tie-learned":
        info["fit"] = cfg.fit
    if cfg.method == "zip-tie":
        info |= {"weighting": cfg.weighting, "emphasis": cfg.emphasis}
    lm_fit = cfg.method == "zip-tie-learned" and cfg.fit == "lm-loss"
    if lm_fit and not prep.fit_texts:
        raise BailongError("embed: zip-tie-learned with fit=lm-loss needs fit_corpus (training text: the corpus stage's train.jsonl)")
    matrices = [("embed_tokens", model.get_input_embeddings().weight)]
    if not tied:
        matrices.append(("lm_head", model.get_output_embeddings().weight))
    with torch.no_grad():
        for name, weight in matrices:
            maps, method = None, cfg.method
            if lm_fit:
                method = "subword-mean"  # the fit's starting point; also counts the undecomposable tokens
            elif cfg.method == "zip-tie-learned":
                maps = methods.fit_char_maps(weight[: prep.n_old].float(), prep.dec, seed=cfg.seed)
                info[f"fit_{name}"] = {str(n): {"examples": m.examples, "r2_train": m.r2_train, "r2_heldout": m.r2_heldout,
                                                "weights": [round(w, 4) for w in m.weights.tolist()]} for n, m in maps.items()}
            fallbacks = methods.init_rows(weight, prep.rows, method, prep.n_old, std=std, generator=gen, dec=prep.dec,
                                          weighting=cfg.weighting, emphasis=cfg.emphasis, maps=maps)
            if pad_ids:  # padding rows: the mean row; never emitted, never scored
                weight[pad_ids] = weight[: prep.n_old].float().mean(dim=0).to(weight.dtype)
            info[f"fallback_to_mean_{name}"] = fallbacks
    if lm_fit:  # gradients flow to the handful of fit parameters only (the base is frozen inside fit_lm)
        rows = [r for r in prep.rows if r.old_ids and all(0 <= i < prep.n_old for i in r.old_ids)]
        char_ids = [i for c, i in prep.dec.char_ids.items() if len(c.encode("utf-8")) >= 2]
        info["fit_lm"] = fit_lm(model, rows, prep.n_old, len(prep.new_tok), char_ids, prep.new_tok, prep.fit_texts,
                                steps=cfg.fit_steps, lr=cfg.fit_lr)
    if tied and model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise BailongError("resizing untied embed_tokens and lm_head of a tied model")
    if pad_ids:
        model.generation_config.suppress_tokens = pad_ids
    return info


def run(cfg: EmbedConfig) -> StageResult:
    prep = Prepared(cfg)
    model = prep.base_model()
    stats: dict = {"method": cfg.method, "base_vocab_size": prep.n_old, "new_rows": len(prep.rows)}
    stats["base"] = bpc_zh_en(model, prep.old_tok, prep.zh, prep.en, "base")
    info = initialize(model, prep, cfg)
    stats |= {k: v for k, v in info.items() if k.startswith(("fallback", "fit_"))}
    stats["init"] = bpc_zh_en(model, prep.new_tok, prep.zh, prep.en, cfg.method)

    out = cfg.out_dir
    with atomic_path(out / "model") as folder:
        model.save_pretrained(folder)
        prep.new_tok.save_pretrained(folder)
        write_json(folder / "bailong_embed.json", info)
    write_json(out / "stats.json", stats)
    log.info("embed: %s init, bits/char base %s -> init %s", cfg.method, stats["base"], stats["init"])
    return StageResult({"model": out / "model", "stats": out / "stats.json"}, stats)
