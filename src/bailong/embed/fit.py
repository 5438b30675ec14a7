"""zip-tie-learned, fitted by language-model loss: a handful of weights, the base model frozen.

A new token's row is a weighted mean of the rows of the pieces the OLD tokenizer splits it into
(byte-fallback pieces, byte-level tokens, or whole old pieces, as in new_tokens.tsv), pulled
toward the mean character row and rescaled:

    row = scale * ((1 - blend) * sum_i softmax(a)_i E[piece_i] + blend * mu)

The logits `a` are shared by position: one per (pieces n, position i) for n <= 4, and
first/middle/last for longer tokens. With a = 0, blend = 0 and scale = 1 this is exactly
subword-mean (uniform zip-tie over the old pieces), the fit's starting point. Embed_tokens and
lm_head have their own parameters when untied.

Why not least squares on rows: on SmolLM2 the byte rows explain ~0% of the variance of its
single-character rows (held-out R^2 ~ 0, see methods.fit_char_maps), and squared error in
embedding space does not track what matters, the model's loss on text with the new tokens.
"""

from __future__ import annotations

import logging
import math

import torch
from torch.func import functional_call
from tqdm import tqdm

from bailong.embed.methods import NewRow

log = logging.getLogger(__name__)


def position_key(n: int, i: int) -> str:
    """Which shared weight the i-th of n pieces uses.

    >>> [position_key(3, i) for i in range(3)], [position_key(6, i) for i in (0, 2, 5)]
    (['3:0', '3:1', '3:2'], ['>4:first', '>4:middle', '>4:last'])
    """
    if n <= 4:
        return f"{n}:{i}"
    return ">4:" + ("first" if i == 0 else "last" if i == n - 1 else "middle")


class PieceMixer(torch.nn.Module):
    """The learned rows of one matrix, differentiable in its few parameters."""

    def __init__(self, old: torch.Tensor, rows: list[NewRow], mu: torch.Tensor):
        super().__init__()
        token, piece, keys = [], [], []
        self.keys: dict[str, int] = {}
        for j, row in enumerate(rows):
            for i, old_id in enumerate(row.old_ids):
                token.append(j)
                piece.append(old_id)
                keys.append(self.keys.setdefault(position_key(len(row.old_ids), i), len(self.keys)))
        self.register_buffer("old", old, persistent=False)
        self.register_buffer("mu", mu, persistent=False)
        self.register_buffer("token", torch.tensor(token, dtype=torch.long), persistent=False)
        self.register_buffer("piece", torch.tensor(piece, dtype=torch.long), persistent=False)
        self.register_buffer("key", torch.tensor(keys, dtype=torch.long), persistent=False)
        self.n_rows = len(rows)
        self.logits = torch.nn.Parameter(torch.zeros(len(self.keys)))
        self.blend_logit = torch.nn.Parameter(torch.tensor(-4.0))  # sigmoid(-4) = 0.018: starts at subword-mean
        self.log_scale = torch.nn.Parameter(torch.tensor(0.0))

    def forward(self) -> torch.Tensor:
        # Softmax within each token: exp(a_key) / sum over the token's pieces.
        e = self.logits[self.key].exp()
        norm = torch.zeros(self.n_rows, device=e.device).index_add(0, self.token, e)
        coef = e / norm[self.token]
        mixed = torch.zeros(self.n_rows, self.old.shape[1], device=e.device).index_add(0, self.token, self.old[self.piece] * coef[:, None])
        blend = torch.sigmoid(self.blend_logit)
        return self.log_scale.exp() * ((1 - blend) * mixed + blend * self.mu)

    def summary(self) -> dict:
        return {"weights": {k: round(math.exp(self.logits[i].item()), 4) for k, i in self.keys.items()},
                "blend": round(torch.sigmoid(self.blend_logit).item(), 4), "scale": round(self.log_scale.exp().item(), 4)}


def _blocks(tokenizer, texts: list[str], block_size: int) -> torch.Tensor:
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    flat = [start]
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        flat += ids
    n = (len(flat) - 1) // block_size
    return torch.tensor([flat[k * block_size : k * block_size + block_size + 1] for k in range(n)], dtype=torch.long)


def fit_lm(model, rows: list[NewRow], n_old: int, n_vocab: int, mu_ids: list[int], tokenizer, texts: list[str], *,
           steps: int, lr: float, block_size: int = 256, batch_blocks: int = 8) -> dict:
    """Fit the rows of `rows` (all decomposable into old ids) by next-token loss on `texts`; write them in place.

    The model's own forward runs with the embedding (and untied lm_head) weights replaced by
    old rows + learned rows, so model-specific details (embedding scaling, logit caps) apply.
    Returns what was fitted and the loss on the fitting text before and after.
    """
    blocks = _blocks(tokenizer, texts, block_size)
    if len(blocks) == 0:
        raise ValueError(f"the fitting text gives fewer than {block_size + 1} tokens")
    device = model.get_input_embeddings().weight.device
    blocks = blocks.to(device)
    names = {id(p): n for n, p in model.named_parameters()}
    in_w = model.get_input_embeddings().weight
    out_w = model.get_output_embeddings().weight
    matrices = {"embed_tokens": in_w} if in_w is out_w else {"embed_tokens": in_w, "lm_head": out_w}
    new_ids = torch.tensor([r.id for r in rows], device=device)
    mixers = {}
    for name, w in matrices.items():
        old = w[:n_old].detach().float()
        mu = old[mu_ids].mean(dim=0) if len(mu_ids) >= 10 else old.mean(dim=0)
        mixers[name] = PieceMixer(old, rows, mu).to(device)
    params = [p for m in mixers.values() for p in m.parameters()]
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)

    def loss_on(batch: torch.Tensor) -> torch.Tensor:
        replaced = {}
        for name, w in matrices.items():
            full = w.detach().clone().index_copy(0, new_ids, mixers[name]().to(w.dtype))
            replaced[names[id(w)]] = full
        logits = functional_call(model, replaced, (batch[:, :-1],)).logits[..., :n_vocab].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, n_vocab), batch[:, 1:].reshape(-1))

    def full_loss() -> float:
        with torch.no_grad():
            return sum(loss_on(blocks[k : k + batch_blocks]).item() * len(blocks[k : k + batch_blocks])
                       for k in range(0, len(blocks), batch_blocks)) / len(blocks)

    try:
        before = full_loss()
        opt = torch.optim.Adam(params, lr=lr)
        gen = torch.Generator().manual_seed(0)
        for _ in tqdm(range(steps), desc="zip-tie-learned fit", unit=" steps", leave=False):
            pick = torch.randperm(len(blocks), generator=gen)[:batch_blocks].to(device)
            loss = loss_on(blocks[pick])
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = full_loss()
        with torch.no_grad():
            for name, w in matrices.items():
                w[new_ids] = mixers[name]().to(w.dtype)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    log.info("zip-tie-learned: fitting loss %.4f -> %.4f nats/token on %d blocks", before, after, len(blocks))
    return {"objective": "lm-loss", "blocks": len(blocks), "block_size": block_size, "steps": steps,
            "loss_before": round(before, 4), "loss_after": round(after, 4),
            **{name: m.summary() for name, m in mixers.items()}}
