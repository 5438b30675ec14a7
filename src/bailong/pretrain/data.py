"""Packing documents into fixed blocks for causal LM training."""

from __future__ import annotations

import random
from typing import Iterator

import torch

from bailong.config import BailongError
from bailong.io import read_jsonl


def pack_blocks(corpus, tokenizer, block_size: int, max_blocks: int) -> list[list[int]]:
    """Tokenize documents in order, join them with EOS and cut into `block_size` blocks.

    Stops once `max_blocks` blocks exist (a run of N steps needs no more); raises if the corpus is
    smaller than one block.
    """
    eos = tokenizer.eos_token_id
    blocks, buf, batch = [], [], []

    def flush(texts):
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            buf.extend(ids)
            buf.append(eos)
        while len(buf) >= block_size and len(blocks) < max_blocks:
            blocks.append(buf[:block_size])
            del buf[:block_size]

    for row in read_jsonl(corpus):
        batch.append(row["text"])
        if len(batch) == 64:
            flush(batch)
            batch = []
            if len(blocks) >= max_blocks:
                break
    if batch and len(blocks) < max_blocks:
        flush(batch)
    if not blocks:
        raise BailongError(f"corpus {corpus} holds fewer than block_size={block_size} tokens")
    return blocks


def shuffled_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless lists of `batch_size` indices into n items: a new shuffle each epoch, fixed by `seed`.

    >>> next(shuffled_batches(3, 2, seed=0))
    [0, 2]
    """
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            epoch = list(range(n))
            rng.shuffle(epoch)
            order.extend(epoch)
        yield order[:batch_size]
        del order[:batch_size]


def block_batches(blocks: list[list[int]], batch_size: int, seed: int) -> Iterator[dict]:
    """Endless shuffled batches of packed blocks; labels = inputs."""
    for take in shuffled_batches(len(blocks), batch_size, seed):
        ids = torch.tensor([blocks[i] for i in take])
        yield {"input_ids": ids, "labels": ids.clone()}
