"""Tokenized, packed training data: a cached token stream cut into fixed blocks.

The corpus is tokenized once per (corpus content, tokenizer) into a flat ``uint32`` file of token
ids with EOS after every document (nanoGPT's ``train.bin``), under the token cache. Training reads
blocks from it through a memory map, so a corpus of billions of tokens is never held in memory, and
a second run (another learning rate, a resume, another process of the same job) tokenizes nothing.
Tokenization is parallel: the fast tokenizer encodes each batch of documents on all cores (Rust).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from bailong.config import BailongError
from bailong.io import atomic_path, content_hash, read_jsonl

log = logging.getLogger(__name__)

_DOCS_PER_BATCH = 1_000


def tokenizer_hash(tokenizer) -> str:
    """Identity of a tokenizer's behaviour: its full serialized pipeline plus the EOS id we append."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(f"{spec}\n{tokenizer.eos_token_id}".encode()).hexdigest()[:16]


def tokenize_corpus(corpus: Path, tokenizer, cache_dir: Path) -> np.ndarray:
    """The corpus as one memory-mapped array of token ids, each document followed by EOS.

    Cached under `cache_dir/<corpus hash>-<tokenizer hash>/`; the file is written to a temporary
    name and renamed, so an interrupted tokenization is redone, never half-used.
    """
    folder = Path(cache_dir) / f"{content_hash(corpus)[:16]}-{tokenizer_hash(tokenizer)}"
    if not (folder / "meta.json").exists():
        _write_tokens(corpus, tokenizer, folder)
    meta = json.loads((folder / "meta.json").read_text())
    log.info("tokens: %s tokens in %s documents (%s)", f"{meta['tokens']:,}", f"{meta['documents']:,}", folder)
    if meta["tokens"] == 0:
        return np.zeros(0, dtype=np.uint32)
    return np.memmap(folder / "tokens.bin", dtype=np.uint32, mode="r")


def _write_tokens(corpus: Path, tokenizer, folder: Path) -> None:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise BailongError("pretrain: the tokenizer has no EOS token to separate documents")
    n_tokens = n_docs = 0
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        with open(tmp / "tokens.bin", "wb") as out, tqdm(desc="tokenize", unit=" docs") as bar:

            def flush(texts: list[str]) -> None:
                nonlocal n_tokens, n_docs
                encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
                flat = np.fromiter((t for ids in encoded for t in (*ids, eos)), dtype=np.uint32)
                out.write(flat.tobytes())
                n_tokens += len(flat)
                n_docs += len(texts)
                bar.update(len(texts))

            batch: list[str] = []
            for row in read_jsonl(corpus):
                batch.append(row["text"])
                if len(batch) == _DOCS_PER_BATCH:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
        meta = {"corpus": str(corpus), "tokens": n_tokens, "documents": n_docs, "dtype": "uint32", "eos": eos}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))


def count_blocks(tokens: np.ndarray, block_size: int, corpus: Path) -> int:
    """Whole blocks in the stream (the tail shorter than a block is left out); raises if there are none."""
    n = len(tokens) // block_size
    if n == 0:
        raise BailongError(f"corpus {corpus} holds {len(tokens)} tokens, fewer than block_size={block_size} tokens")
    return n


def document_positions(block: np.ndarray, eos: int) -> np.ndarray:
    """Position ids that restart at 0 after every EOS.

    transformers (masking_utils) reads restarting positions with no attention mask as packed
    sequences and masks attention across them (sdpa, eager, flex and flash), so no token attends
    into another document of its block.

    >>> document_positions(np.array([5, 6, 2, 7, 2, 2, 8]), eos=2).tolist()
    [0, 1, 2, 0, 1, 0, 0]
    """
    idx = np.arange(len(block))
    starts = np.zeros(len(block), dtype=bool)
    starts[0] = True
    starts[1:] = block[:-1] == eos
    return idx - np.maximum.accumulate(np.where(starts, idx, 0))


def shuffled_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless lists of `batch_size` indices into n items: a new shuffle each epoch, fixed by `seed`.

    >>> next(shuffled_batches(3, 2, seed=0))
    [2, 0]
    """
    rng = np.random.default_rng(seed)
    order = np.zeros(0, dtype=np.int64)
    while True:
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        yield order[:batch_size].tolist()
        order = order[batch_size:]


def block_batches(tokens: np.ndarray, block_size: int, batch_size: int, seed: int, eos: int | None = None,
                  rank: int = 0, world_size: int = 1) -> Iterator[dict]:
    """Endless shuffled micro-batches of packed blocks for process `rank` of `world_size`; labels = inputs.

    Every process draws the same global batch of `batch_size * world_size` blocks and takes its own
    slice, so a 2-process run sees exactly the blocks of a 1-process run with twice the batch.
    With `eos`, position ids restart after each document (no cross-document attention).
    """
    n = len(tokens) // block_size
    for take in shuffled_batches(n, batch_size * world_size, seed):
        rows = [np.asarray(tokens[i * block_size:(i + 1) * block_size], dtype=np.int64)
                for i in take[rank * batch_size:(rank + 1) * batch_size]]
        ids = torch.from_numpy(np.stack(rows))
        batch = {"input_ids": ids, "labels": ids.clone()}
        if eos is not None:
            batch["position_ids"] = torch.from_numpy(np.stack([document_positions(r, eos) for r in rows]))
        yield batch
