"""Model building blocks shared by several tasks: an MLP with a named head, a GPT-style
transformer, and an epoch-shuffled minibatch sampler."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import generator, init_module_

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    """``body`` (Linear + activation, repeated) then a Linear ``head``."""

    def __init__(self, d_in: int, hidden: Sequence[int], d_out: int, activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(d_in, width), ACTIVATIONS[activation]()]
            d_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d_in, d_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        # separate q, k, v matrices, so matrix optimizers see one square matrix each
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        h = self.n_heads

        def heads(z: Tensor) -> Tensor:
            return z.view(b, t, h, d // h).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)),
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_heads)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.proj = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class Transformer(nn.Module):
    """GPT-style decoder: ``tok_emb`` + learned ``pos_emb``, pre-LN blocks, final LayerNorm and
    an ``lm_head`` (optionally tied to ``tok_emb``). Returns logits for every position.

    Init follows GPT-2 (Radford et al. 2019): N(0, 0.02^2) weights, residual projections scaled
    by 1/sqrt(2 * n_layers), LayerNorm gains 1.
    """

    def __init__(self, vocab: int, context: int, d: int, n_layers: int, n_heads: int,
                 tie: bool) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.tok_emb.weight

    def reset_parameters(self, gen: torch.Generator) -> None:
        init_module_(self, gen, std=0.02)
        residual_std = 0.02 / math.sqrt(2 * len(self.blocks))
        with torch.no_grad():
            for block in self.blocks:
                block.attn.proj.weight.normal_(0.0, residual_std, generator=gen)
                block.proj.weight.normal_(0.0, residual_std, generator=gen)

    def forward(self, idx: Tensor) -> Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def sampled_batch(sampler: "EpochSampler", full_batch: bool, step: int, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` themselves (full batch), or their rows that ``sampler`` picks for ``step`` (on the CPU)."""
    if full_batch:
        return tensors
    idx = sampler.indices(step)
    return tuple(t.cpu()[idx] for t in tensors)


class EpochSampler:
    """Minibatch indices for step s: positions s*B .. s*B+B-1 of the stream made by concatenating
    a fresh permutation of range(n) per epoch (every example once per epoch). Deterministic in
    (seed, step), whatever order steps are asked for."""

    def __init__(self, seed: int, n: int, batch_size: int) -> None:
        self.seed, self.n, self.batch_size = seed, n, batch_size
        self._cache: dict[int, Tensor] = {}

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[epoch] = torch.randperm(self.n, generator=generator(self.seed, "epoch",
                                                                            epoch))
        return self._cache[epoch]

    def indices(self, step: int) -> Tensor:
        start = step * self.batch_size
        parts, need = [], self.batch_size
        while need > 0:
            epoch, offset = divmod(start, self.n)
            take = self._perm(epoch)[offset:offset + need]
            parts.append(take)
            need -= take.numel()
            start += take.numel()
        return torch.cat(parts)
