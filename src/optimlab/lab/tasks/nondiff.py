"""Model blocks with no useful gradient: for methods that use function values only (zeroth order, CBO).

Each block's output is piecewise constant in its parameters (or in its input), so backpropagation gives
zero (or no) gradient almost everywhere, while the function values still carry the signal:

* :class:`Staircase` — a quantized activation ``round(L·tanh(x))/L`` (the staircase networks of PolyStep /
  ReSTE-style studies);
* :class:`HardRouting` — a mixture of expert layers where a linear router picks one expert per input by
  ``argmax`` (hard MoE routing: the router receives no gradient);
* :class:`Int8Linear` — a linear layer whose weights are used only through int8 quantization
  ``clamp(round(w/s), −127, 127)·s`` with the per-tensor scale ``s = max|w|/127`` (zero gradient in w).

:func:`nondiff_mlp` stacks them into a classifier for digits-sized inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Staircase", "HardRouting", "Int8Linear", "nondiff_mlp"]


class Staircase(nn.Module):
    """``round(levels·tanh(x))/levels``: 2·levels + 1 output values, zero derivative almost everywhere."""

    def __init__(self, levels: int = 4):
        super().__init__()
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"Staircase: levels must be a positive int, got {levels!r}")
        self.levels = levels

    def forward(self, x: Tensor) -> Tensor:
        return torch.round(self.levels * torch.tanh(x)) / self.levels


class Int8Linear(nn.Linear):
    """``y = x·Q(W)ᵀ + b`` with ``Q(W) = clamp(round(W/s), −127, 127)·s``, ``s = max|W|/127``: the float
    weights are the optimizer's coordinates, the forward pass sees int8 values only."""

    def quantized(self) -> Tensor:
        s = self.weight.detach().abs().max().clamp_min(1e-12) / 127
        return torch.clamp(torch.round(self.weight / s), -127, 127) * s

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.quantized(), self.bias)


class HardRouting(nn.Module):
    """``experts`` linear maps and a linear router; each input goes through the expert its router scores
    highest (``argmax``), so the router's parameters get no gradient."""

    def __init__(self, d_in: int, d_out: int, experts: int = 4):
        super().__init__()
        self.router = nn.Linear(d_in, experts)
        self.experts = nn.ModuleList(nn.Linear(d_in, d_out) for _ in range(experts))

    def forward(self, x: Tensor) -> Tensor:
        choice = self.router(x).argmax(dim=-1)
        out = torch.stack([e(x) for e in self.experts], dim=-2)  # (..., experts, d_out)
        return out.gather(-2, choice[..., None, None].expand(*choice.shape, 1, out.shape[-1])).squeeze(-2)


def nondiff_mlp(d_in: int = 64, width: int = 32, d_out: int = 10, *, levels: int = 4, experts: int = 4) -> nn.Module:
    """Int8Linear → Staircase → HardRouting → Staircase → Int8Linear: a classifier whose loss is piecewise
    constant in every parameter."""
    return nn.Sequential(Int8Linear(d_in, width), Staircase(levels), HardRouting(width, width, experts),
                         Staircase(levels), Int8Linear(width, d_out))
