"""Extend a SentencePiece BPE tokenizer (Llama 2, Mistral) by editing its ModelProto.

SentencePiece BPE encodes by repeatedly joining the adjacent pair whose concatenation is a piece
with the highest score. Chinese-LLaMA-2 appended pieces with score 0, above most base pieces, so
new pieces beat base ones: English segmentation changed and HF's converted tokenizer (merges ranked
by score) disagreed with sentencepiece on many lines. Here new pieces get scores strictly below
every regular base piece, decreasing in the order they are added, so base pieces keep winning and
every score is distinct. (Llama 2's whitespace-run pieces sit at -1e9; they never compete with
Han pieces, and float32 cannot hold distinct scores down there anyway.)
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from bailong.config import BailongError
from bailong.vocab.bytelevel import NewToken

log = logging.getLogger(__name__)
NORMAL = 1  # ModelProto.SentencePiece.Type.NORMAL
_SENTINEL_SCORE = -1e8  # below this: Llama 2's whitespace-run pieces, not ranked against Han pieces


def load_proto(path: Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(Path(path).read_bytes())
    return proto


def check_bpe(proto, path: Path) -> None:
    kinds = {1: "Unigram", 2: "BPE", 3: "word", 4: "char"}
    kind = kinds.get(proto.trainer_spec.model_type, str(proto.trainer_spec.model_type))
    if kind != "BPE":
        raise BailongError(
            f"tokenizer kind SentencePiece {kind} in {path} is not supported; supported: "
            "SentencePiece BPE (Llama 2, Mistral) and byte-level BPE (Llama 3, Qwen, GPT-2, SmolLM2)"
        )


def processor(proto, dummy_prefix: bool | None = None):
    """A SentencePieceProcessor for `proto`, optionally with the dummy prefix switched on/off."""
    import sentencepiece as spm

    if dummy_prefix is not None:
        from sentencepiece import sentencepiece_model_pb2 as pb

        copy = pb.ModelProto()
        copy.CopyFrom(proto)
        copy.normalizer_spec.add_dummy_prefix = dummy_prefix
        proto = copy
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


def learn(base, texts: list[str], vocab_size: int, max_piece_chars: int, seed: int = 0) -> list[str]:
    """Pieces of a SentencePiece BPE trained on `texts` with the base's normalization, by score:
    about `vocab_size` multi-character pieces plus the characters themselves.

    Documents are split into lines (SentencePiece trains on sentences). If the corpus cannot
    support `vocab_size`, training is retried at the largest size SentencePiece reports it can.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    spm.set_random_generator_seed(seed)  # input sampling and shuffling
    lines = [line for text in texts for line in text.split("\n") if line.strip()]
    # SentencePiece reserves a piece for every character it covers; ask for that many on top.
    vocab_size += len({c for line in lines for c in line})
    norm = base.normalizer_spec
    options = dict(
        model_type="bpe", character_coverage=0.9995, normalization_rule_name=norm.name or "identity",
        add_dummy_prefix=norm.add_dummy_prefix, remove_extra_whitespaces=norm.remove_extra_whitespaces,
        split_digits=base.trainer_spec.split_digits, byte_fallback=True, max_sentence_length=16384,
        max_sentencepiece_length=max_piece_chars, input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=2, minloglevel=2,
        train_extremely_large_corpus=False,
    )
    while True:
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, **options)
            break
        except RuntimeError as exc:
            fits = re.search(r"value <= (\d+)", str(exc))
            if not fits or int(fits.group(1)) >= vocab_size:
                raise BailongError(f"SentencePiece training failed: {str(exc).splitlines()[0]}") from None
            vocab_size = int(fits.group(1))
            log.info("vocab: the corpus supports at most %d SentencePiece pieces; retrying", vocab_size)
    learned = pb.ModelProto()
    learned.ParseFromString(model.getvalue())
    pieces = [p for p in learned.pieces if p.type == NORMAL]
    return [p.piece for p in sorted(pieces, key=lambda p: -p.score)]


def _qualifies(piece: str) -> bool:
    return any(ord(c) >= 0x80 and c != "▁" for c in piece)


def extend(proto, targets: list[tuple[str, str]], n_new: int) -> list[NewToken]:
    """Append up to `n_new` pieces to `proto` in place, in target order; return them.

    A multi-character piece is only reachable if its characters are pieces, so missing characters
    are added just before it (origin "intermediate" unless they were targets themselves).
    """
    base_proc = processor(proto, dummy_prefix=False)  # segmentation by the OLD tokenizer
    known = {p.piece: i for i, p in enumerate(proto.pieces)}
    regular = [p.score for p in proto.pieces if p.type == NORMAL and p.score > _SENTINEL_SCORE]
    score = min(regular) if regular else 0.0
    added: list[NewToken] = []

    def add(piece: str, origin: str) -> None:
        nonlocal score
        score -= 1.0
        new = proto.pieces.add()
        new.piece, new.score, new.type = piece, score, NORMAL
        known[piece] = len(proto.pieces) - 1
        old = base_proc.encode_as_pieces(piece.replace("▁", " "))
        added.append(NewToken(known[piece], piece, old, origin))

    for piece, origin in targets:
        if len(added) >= n_new:
            break
        if piece in known or not _qualifies(piece):
            continue
        missing = [c for c in dict.fromkeys(piece) if c not in known and len(piece) > 1]
        if len(added) + len(missing) + 1 > n_new:
            continue  # needs more room than is left; a later target may fit
        for char in missing:
            add(char, "intermediate")
        add(piece, origin)
    return added


def unreachable(proto, added: list[NewToken]) -> int:
    """How many added pieces sentencepiece does not produce when encoding the piece's own text."""
    proc = processor(proto, dummy_prefix=False)
    return sum(proc.encode_as_pieces(t.token.replace("▁", " ")) != [t.token] for t in added)


def save_hf(proto, base_dir: Path, out: Path):
    """Write tokenizer.model and an HF tokenizer folder converted from it that encodes exactly like
    sentencepiece.

    transformers' Llama converter gives the vocabulary and merges, but two details differ from
    sentencepiece: its Metaspace pre-tokenizer skips the dummy prefix when a text already starts
    with a space (so leading spaces are lost on decode), and it ranks merges by vocabulary order,
    not by the merged piece's score (Llama 2's whitespace-run pieces score -1e9 yet sit early).
    Both are fixed in tokenizer.json, which is then loaded as a plain fast tokenizer.
    """
    import json

    from transformers import AutoTokenizer, LlamaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(proto.SerializeToString())
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (base_dir / name).exists():
            (out / name).write_text((base_dir / name).read_text())
    # transformers 5 converts a folder holding tokenizer.model on load (LlamaTokenizer(vocab_file=...)
    # would silently ignore the file).
    LlamaTokenizer.from_pretrained(out, add_bos_token=True, local_files_only=True).save_pretrained(out)

    spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    prepend = [{"type": "Prepend", "prepend": "▁"}] if proto.normalizer_spec.add_dummy_prefix else []
    spec["normalizer"] = {"type": "Sequence", "normalizers": [*prepend, replace]}
    spec["pre_tokenizer"] = None
    score = {p.piece: p.score for p in proto.pieces}
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    spec["model"]["merges"] = [list(m) for m in sorted(merges, key=lambda m: -score[m[0] + m[1]])]  # stable: ties keep order
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # load tokenizer.json as written, not rebuilt
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
    return AutoTokenizer.from_pretrained(out, local_files_only=True)
