"""`bailong embed compare`: every init method in bits per character, side by side with the base.

Step 0 is measured in memory for each method. With pretrain_steps > 0 each initialized model is
also saved and trained for that many steps through the pretrain stage, then measured again.
"""

from __future__ import annotations

import logging

from bailong.config import parse_config
from bailong.embed.config import EmbedCompareConfig, EmbedConfig
from bailong.embed.stage import Prepared, initialize
from bailong.io import atomic_path, write_json, write_text
from bailong.metrics import bpc_zh_en

log = logging.getLogger(__name__)


def _variants(cfg: EmbedCompareConfig) -> list[EmbedConfig]:
    out = []
    for method in cfg.methods:
        if method == "zip-tie":
            out += [cfg.model_copy(update={"method": method, "weighting": w}) for w in cfg.weightings]
        elif method == "zip-tie-learned":
            out += [cfg.model_copy(update={"method": method, "fit": f}) for f in cfg.fits]
        else:
            out.append(cfg.model_copy(update={"method": method}))
    return out


def _label(c: EmbedConfig) -> str:
    if c.method == "zip-tie":
        return f"zip-tie ({c.weighting})"
    return f"zip-tie-learned ({c.fit})" if c.method == "zip-tie-learned" else c.method


def compare(cfg: EmbedCompareConfig) -> dict:
    if cfg.fit_corpus is None and cfg.corpus is not None:
        cfg = cfg.model_copy(update={"fit_corpus": cfg.corpus})  # one training text for the fit and the steps
    prep = Prepared(cfg)
    base = prep.base_model()
    rows = [{"method": "base model, base tokenizer", **bpc_zh_en(base, prep.old_tok, prep.zh, prep.en, "base")}]
    del base
    for variant in _variants(cfg):
        if variant.method == "zip-tie-learned" and variant.fit == "lm-loss" and not prep.fit_texts:
            log.warning("embed compare: zip-tie-learned (lm-loss) skipped: it fits on training text; set corpus")
            rows.append({"method": _label(variant), "fit": "skipped: needs training text (set corpus)"})
            continue
        model = prep.base_model()
        info = initialize(model, prep, variant)
        row = {"method": _label(variant), **bpc_zh_en(model, prep.new_tok, prep.zh, prep.en, _label(variant)),
               "fallbacks": info["fallback_to_mean_embed_tokens"]}
        fit = info.get("fit_embed_tokens")
        if fit:
            row["fit"] = "R^2 held-out " + ", ".join(f"{n} bytes: {f['r2_heldout']}" for n, f in fit.items())
        if "fit_lm" in info:
            row["fit"] = f"fitting-text loss {info['fit_lm']['loss_before']} -> {info['fit_lm']['loss_after']} nats/token"
        if cfg.pretrain_steps:
            row |= _after_pretraining(model, prep, variant, cfg)
        rows.append(row)
        log.info("embed compare: %s", row)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(cfg.out_dir / "compare.json", rows)
    _plot(rows, cfg)
    md = _markdown(rows, cfg)
    write_text(cfg.out_dir / "compare.md", md)
    return {"rows": rows, "markdown": cfg.out_dir / "compare.md", "plot": cfg.out_dir / "compare.png"}


def _after_pretraining(model, prep: Prepared, variant: EmbedConfig, cfg: EmbedCompareConfig) -> dict:
    from bailong.pretrain import PretrainConfig
    from bailong.pretrain import run as pretrain_run

    folder = cfg.out_dir / _label(variant).replace(" ", "-").replace("(", "").replace(")", "")
    with atomic_path(folder / "model") as tmp:
        model.save_pretrained(tmp)
        prep.new_tok.save_pretrained(tmp)
        write_json(tmp / "bailong_embed.json", {"new_token_ids": [r.id for r in prep.rows]})
    data = {**cfg.pretrain, "model": str(folder / "model"), "corpus": str(cfg.corpus), "out_dir": str(folder / "pretrain"),
            "eval_corpus": str(cfg.eval_corpus) if cfg.eval_corpus else None, "eval_chars": cfg.eval_chars}
    data["train"] = {**data.get("train", {}), "max_steps": cfg.pretrain_steps}
    result = pretrain_run(parse_config(PretrainConfig, data, "embed compare.pretrain"))
    after = result.stats["after"]
    return {f"{k} after {cfg.pretrain_steps} steps": v for k, v in after.items()}


def _markdown(rows: list[dict], cfg: EmbedCompareConfig) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"# Embedding initialization: bits per character (eval {cfg.eval_chars:,} characters each)", "",
             "| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines + ["", "![bits per character](compare.png)"]) + "\n"


def _plot(rows: list[dict], cfg: EmbedCompareConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if k.startswith("bpc_")]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        bars = ax.bar([i + k * width for i in range(len(rows))], [r.get(key, float("nan")) for r in rows], width, label=key)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(rows))], [r["method"] for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("bits per character (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(cfg.out_dir / "compare.png", dpi=120)
    plt.close(fig)
