"""Export a merged model folder and its (extended) tokenizer to GGUF for llama.cpp, with the gguf
package's writer, tensor-name map and special-vocabulary reader; then read the file back to check it.

Conversion follows llama.cpp's convert_hf_to_gguf.py for the Llama architecture (Llama 2/3,
SmolLM2, Mistral): the same tensor names, q/k rows permuted from HF's rotate-half RoPE layout to
the interleaved one llama.cpp uses, 1-D tensors kept in F32, the vocabulary padded with [PADn]
tokens up to the embedding rows (the embed stage pads to a multiple of 64).

Tokenizers:
  SentencePiece (tokenizer.model): pieces, scores and piece types, as the model proto has them.
    Appended zh-TW pieces carry scores below every base piece, so llama.cpp, like sentencepiece,
    keeps preferring base merges.
  byte-level BPE (tokenizer.json): vocabulary, merges (appended zh-TW merges included), token
    types (special added tokens are CONTROL) and the pre-tokenizer's llama.cpp name.

Tensors are read one at a time from the safetensors files and written as they are converted, so
a 7B model exports in the memory of its largest tensor.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from bailong.config import BailongError
from bailong.io import atomic_path

log = logging.getLogger(__name__)
SUPPORTED_ARCHS = ("LlamaForCausalLM", "MistralForCausalLM")
OUTTYPES = ("f16", "f32", "q8_0")


def _config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.exists():
        raise BailongError(f"{model_dir} is not a model folder (no config.json); pass a stage's merged model/ folder")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED_ARCHS:
        raise BailongError(f"GGUF export supports {', '.join(SUPPORTED_ARCHS)}; {model_dir} is {arch}")
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise BailongError(f"GGUF export: RoPE scaling '{rope.get('rope_type') or rope.get('type')}' is not supported yet")
    return cfg


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """HF rotate-half q/k rows -> llama.cpp's interleaved pairs (convert_hf_to_gguf's LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's name for a byte-level tokenizer's pre-tokenizer (tokenizer.ggml.pre)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    split = next((p for p in parts if p.get("type") == "Split"), None)
    pattern = (split or {}).get("pattern", {}).get("Regex")
    preferred = ("llama-bpe", "qwen2", "tekken", "gpt-4o", "qwen35")  # llama.cpp's canonical names first
    for name in sorted(GGUF_PRE_TOKENIZER_SPLITS, key=lambda n: (n not in preferred, preferred.index(n) if n in preferred else 0)):
        if pattern and GGUF_PRE_TOKENIZER_SPLITS[name] == pattern:
            return name
    raise BailongError(f"GGUF export: llama.cpp has no known name for this pre-tokenizer ({kinds}); pass --pre NAME "
                       "(llama.cpp's tokenizer.ggml.pre, e.g. llama-bpe, qwen2, smollm)")


def _vocab(model_dir: Path, n_vocab: int, pre: str | None):
    """(tokenizer model, pre name or None, tokens, scores or None, types, merges)."""
    from bailong.vocab.sentencepiece import load_proto
    from bailong.vocab.stage import detect_kind

    kind = detect_kind(model_dir)
    spec_path = model_dir / "tokenizer.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.exists() else {}
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    if kind == "sentencepiece":
        proto = load_proto(model_dir / "tokenizer.model")
        tokens = [p.piece for p in proto.pieces]
        scores = [p.score for p in proto.pieces]
        types = [int(p.type) for p in proto.pieces]  # sentencepiece's piece types are GGUF's token types
        merges: list[str] = []
        model, pre_name = "llama", None
    else:
        by_id = {i: t for t, i in spec["model"]["vocab"].items()}
        tokens, scores, types = [], None, []
        for i in range(max([*by_id, *added]) + 1):
            if i in added:
                tokens.append(added[i]["content"])
                types.append(3 if added[i].get("special") else 4)  # CONTROL / USER_DEFINED
            elif i in by_id:
                tokens.append(by_id[i])
                types.append(1)
            else:
                raise BailongError(f"GGUF export: {spec_path} has no token with id {i}")
        merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
        model, pre_name = "gpt2", pre or _pre_tokenizer_name(spec)
    for i, t in sorted(added.items()):  # added tokens past the SentencePiece model (e.g. a new pad token)
        if kind == "sentencepiece" and i >= len(tokens):
            if i != len(tokens):
                raise BailongError(f"GGUF export: added token ids must follow the vocabulary; {t['content']!r} has id {i}")
            tokens.append(t["content"])
            scores.append(-1000.0)
            types.append(3 if t.get("special") else 4)
    if len(tokens) > n_vocab:
        raise BailongError(f"GGUF export: the tokenizer has {len(tokens)} tokens but the model only {n_vocab} embedding rows")
    for i in range(len(tokens), n_vocab):  # the embed stage's padding rows: never produced, never generated
        tokens.append(f"[PAD{i}]")
        types.append(5)  # UNUSED
        if scores is not None:
            scores.append(-1000.0)
    return model, pre_name, tokens, scores, types, merges


def _tensors(model_dir: Path) -> list[tuple[str, tuple[int, ...], Path]]:
    """(name, shape, file) of every tensor in the folder's safetensors files, without loading any."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise BailongError(f"{model_dir} has no .safetensors weights (bailong never loads pickles)")
    found = []
    for f in files:
        with safe_open(f, framework="pt") as st:
            found += [(name, tuple(st.get_slice(name).get_shape()), f) for name in st.keys()]
    return found


def _load(name: str, file: Path) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(file, framework="pt") as st:
        return st.get_tensor(name).float().numpy()


def export_gguf(model_dir: Path, out: Path, outtype: str = "f16", pre: str | None = None) -> dict:
    """Write `out` (.gguf); return a summary (tensors, bytes, tokenizer, file type)."""
    import gguf
    from tqdm import tqdm

    if outtype not in OUTTYPES:
        raise BailongError(f"GGUF export: outtype '{outtype}' is not one of {', '.join(OUTTYPES)}")
    model_dir = Path(model_dir)
    cfg = _config(model_dir)
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    n_vocab = cfg["vocab_size"]
    rope_theta = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    tie = cfg.get("tie_word_embeddings", False)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[outtype]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]

    def stored_as(shape: tuple[int, ...]):
        """1-D tensors stay F32 (as in llama.cpp); Q8_0 needs rows in blocks of 32, else F16."""
        if len(shape) == 1 or qtype == gguf.GGMLQuantizationType.F32:
            return gguf.GGMLQuantizationType.F32
        if qtype == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % 32 == 0:
            return qtype
        return gguf.GGMLQuantizationType.F16

    plan = []  # (gguf name, HF name, shape, file, heads to permute by or None, stored type)
    for name, shape, file in _tensors(model_dir):
        if tie and name == "lm_head.weight":
            continue  # llama.cpp uses token_embd for the output when output.weight is absent
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise BailongError(f"GGUF export: no llama.cpp name for tensor '{name}'")
        permute = heads if name.endswith("q_proj.weight") else kv_heads if name.endswith("k_proj.weight") else None
        plan.append((target, name, shape, file, permute, stored_as(shape)))

    model, pre_name, tokens, scores, types, merges = _vocab(model_dir, n_vocab, pre)
    with atomic_path(out) as tmp:
        w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        w.add_name(model_dir.parent.name + "/" + model_dir.name)
        w.add_context_length(cfg.get("max_position_embeddings", 2048))
        w.add_embedding_length(cfg["hidden_size"])
        w.add_block_count(layers)
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_rope_dimension_count(head_dim)
        w.add_head_count(heads)
        w.add_head_count_kv(kv_heads)
        w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-5))
        w.add_rope_freq_base(float(rope_theta))
        w.add_vocab_size(n_vocab)
        w.add_file_type(ftype)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_tokenizer_model(model)
        if pre_name:
            w.add_tokenizer_pre(pre_name)
        w.add_token_list(tokens)
        if scores is not None:
            w.add_token_scores(scores)
        w.add_token_types(types)
        if merges:
            w.add_token_merges(merges)
        gguf.SpecialVocab(model_dir, load_merges=False, n_vocab=n_vocab).add_to_gguf(w)

        # Tensor infos come first in the file: sizes follow from shapes, and each tensor is converted only
        # when its data is written, so no more than one is held in memory.
        for target, _, shape, _, _, kind in plan:
            block, size = gguf.GGML_QUANT_SIZES[kind]
            if kind == gguf.GGMLQuantizationType.Q8_0:
                w.add_tensor_info(target, gguf.quants.quant_shape_to_byte_shape(shape, kind), np.dtype(np.uint8),
                                  int(np.prod(shape)) // block * size, raw_dtype=kind)
            else:
                dtype = np.dtype(np.float32 if kind == gguf.GGMLQuantizationType.F32 else np.float16)
                w.add_tensor_info(target, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for _, name, _, file, permute, kind in tqdm(plan, desc="gguf tensors", unit=" tensors"):
            data = _load(name, file)
            if permute is not None:
                data = _permute(data, permute)
            if kind == gguf.GGMLQuantizationType.Q8_0:
                w.write_tensor_data(gguf.quants.quantize(data, kind))
            else:
                w.write_tensor_data(data.astype(np.float32 if kind == gguf.GGMLQuantizationType.F32 else np.float16))
        w.close()
    summary = {"path": str(out), "bytes": out.stat().st_size, "tensors": len(plan), "outtype": outtype, "tokenizer": model,
               "pre": pre_name, "tokens": len(tokens), "padding_tokens": sum(t.startswith("[PAD") and y == 5 for t, y in zip(tokens, types)),
               "merges": len(merges)}
    log.info("gguf: wrote %s (%.1f MB, %d tensors, %s tokenizer, %d tokens)", out, summary["bytes"] / 1e6, len(plan), model, len(tokens))
    return summary


def default_samples(limit: int = 300) -> list[str]:
    """zh-TW lines from bailong's own demo chat data, plus English, to compare tokenizations on."""
    from importlib import resources

    from bailong.metrics import english_sample

    path = resources.files("bailong") / "data" / "demo_chat.jsonl"
    lines = [m["content"] for row in path.read_text(encoding="utf-8").splitlines() if row.strip()
             for m in json.loads(row)["messages"]]
    edge = ["emoji 😀🇹🇼 mixed 中英 text 123", "𠀀𠀁𪚥 (CJK Extension B)", "「你好」，《書名》……！？", "  leading and   inner   spaces",
            "tabs\tand\nnewlines\n\n", "全形　空白與２０２４年"]
    return lines[:limit] + [line for line in english_sample(5_000).split("\n") if line][:50] + edge


def verify_gguf(model_dir: Path, path: Path, samples: list[str], logits: bool = False) -> dict:
    """Read the GGUF back: its tensor and token counts, the tokenizer transformers rebuilds from it (and
    llama.cpp's, when llama-cpp-python is installed) against the model folder's on `samples`, and with
    `logits` the dequantized weights' logits against the folder's."""
    import gguf
    from transformers import AutoTokenizer

    from bailong.models import load_tokenizer

    reader = gguf.GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    report: dict = {"tensors": len(reader.tensors), "tokens": len(tokens.data), "samples": len(samples)}
    ours = load_tokenizer(model_dir)
    expected = [ours(s, add_special_tokens=False)["input_ids"] for s in samples]
    back = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    got = [back(s, add_special_tokens=False)["input_ids"] for s in samples]
    report["transformers_same_ids"] = sum(a == b for a, b in zip(expected, got))
    report["transformers_round_trip"] = sum(back.decode(ids) == s for ids, s in zip(got, samples))
    report["mismatch_examples"] = [s[:80] for s, a, b in zip(samples, expected, got) if a != b][:5]
    if (model_dir / "tokenizer.model").exists():
        # transformers rebuilds a SentencePiece GGUF with a Metaspace pre-tokenizer that drops the dummy
        # prefix on text starting with a space; llama.cpp keeps it, like sentencepiece. So the file's own
        # pieces, scores and types are also run through sentencepiece itself.
        report["sentencepiece_same_ids"] = _sentencepiece_check(model_dir, reader, samples, expected)
    probe = max(expected[:100], key=len)[:64] or [0]  # a zh-TW sample, for the logits
    reference = None
    if logits:
        import torch
        from transformers import AutoModelForCausalLM

        from bailong.models import load_model

        with torch.inference_mode():
            reference = load_model(model_dir)(torch.tensor([probe])).logits[0]
            reloaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True)
            back_logits = reloaded(torch.tensor([probe])).logits[0]
        report["max_abs_logit_diff"] = float((reference - back_logits).abs().max())
        report["same_argmax"] = float((reference.argmax(-1) == back_logits.argmax(-1)).float().mean())
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        report["llama_cpp"] = "not installed (pip install llama-cpp-python to check with llama.cpp itself)"
        return report
    # In a child process: a crash inside llama.cpp's native code must not take the export down with it.
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"path": str(path), "samples": samples, "expected": expected, "probe": probe,
                                   "out": str(Path(tmp) / "out.json")}), encoding="utf-8")
        if reference is not None:
            np.save(Path(tmp) / "reference.npy", reference.numpy())
        child = subprocess.run([sys.executable, "-c", "import sys; from bailong.export.gguf import _llama_cpp_job; _llama_cpp_job(sys.argv[1])",
                                str(job)], capture_output=True, text=True)
        if child.returncode == 0:
            report |= json.loads((Path(tmp) / "out.json").read_text())
        else:
            rc, last = child.returncode, (child.stderr.strip().splitlines() or [""])[-1][:200]
            report["llama_cpp"] = f"llama.cpp failed on the file ({f'signal {-rc}' if rc < 0 else f'exit status {rc}'})" + (f": {last}" if last else "")
    return report


def _llama_cpp_job(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    ref_path = Path(job_path).parent / "reference.npy"
    reference = np.load(ref_path) if ref_path.exists() else None
    out = _llama_cpp_check(Path(job["path"]), job["samples"], job["expected"], job["probe"], reference)
    Path(job["out"]).write_text(json.dumps(out), encoding="utf-8")


def _llama_cpp_check(path: Path, samples: list[str], expected: list[list[int]], probe: list[int], reference) -> dict:
    """llama.cpp's own tokenization of the samples, and with `reference` logits its forward pass on `probe`."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=reference is None, logits_all=reference is not None, n_ctx=max(256, 2 * len(probe)),
                verbose=False)
    try:
        out = {"llama_cpp_same_ids": sum(llm.tokenize(s.encode("utf-8"), add_bos=False, special=False) == ids
                                         for s, ids in zip(samples, expected))}
        if reference is not None:
            llm.eval(probe)
            scores = np.asarray(llm.scores[: len(probe)])[:, : reference.shape[-1]]
            out["llama_cpp_max_abs_logit_diff"] = float(np.abs(scores - reference).max())
            out["llama_cpp_same_argmax"] = float((scores.argmax(-1) == reference.argmax(-1)).mean())
    finally:
        llm.close()
    return out


def _sentencepiece_check(model_dir: Path, reader, samples: list[str], expected: list[list[int]]) -> int:
    """How many samples sentencepiece encodes to the expected ids with the GGUF's own vocabulary."""
    from bailong.vocab.sentencepiece import load_proto, processor

    def field(name):
        return reader.fields[name].contents()

    proto = load_proto(model_dir / "tokenizer.model")
    tokens, scores, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.scores"), field("tokenizer.ggml.token_type")
    del proto.pieces[:]
    for token, score, kind in zip(tokens, scores, types):
        if int(kind) == 5 and str(token).startswith("[PAD"):
            break  # the padding rows, not part of the SentencePiece model
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = str(token), float(score), int(kind)
    sp = processor(proto)
    return sum(sp.encode(s) == ids for s, ids in zip(samples, expected))


def export_and_verify(model_dir: Path, out: Path, outtype: str = "f16", pre: str | None = None,
                      samples_file: Path | None = None, logits: bool = False) -> dict:
    """Export, read back, and write `<out>.json` with both summaries. A tokenizer that does not
    round-trip is an error, not a warning: llama.cpp would quietly see different tokens."""
    from bailong.io import write_json

    model_dir = Path(model_dir)
    samples = default_samples()
    if samples_file is not None:
        if not Path(samples_file).is_file():
            raise BailongError(f"samples file '{samples_file}' does not exist")
        samples += [line for line in Path(samples_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    summary = export_gguf(model_dir, out, outtype, pre)
    check = verify_gguf(model_dir, out, samples, logits)
    write_json(Path(str(out) + ".json"), {"export": summary, "verify": check})
    # The strictest reader available decides: llama.cpp itself, else sentencepiece on the file's pieces, else transformers.
    exact = check.get("llama_cpp_same_ids", check.get("sentencepiece_same_ids", check["transformers_same_ids"]))
    if exact != len(samples):
        raise BailongError(f"GGUF export: the file's tokenizer gives different ids on {len(samples) - exact} of {len(samples)} "
                           f"samples (e.g. {check['mismatch_examples'][:1]}); see {out}.json")
    return {"export": summary, "verify": check}
