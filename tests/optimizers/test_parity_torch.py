"""Parity with torch.optim, where torch has the same method: 100 steps, a mixed-shape model, an LR schedule."""

import math

import pytest
import torch
from torch import nn

import optimlab


class Mixed(nn.Module):
    """Embedding, conv kernel (3-D), matrices of two shapes, norm gains, biases."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, idx):
        x = self.emb(idx).transpose(1, 2)
        x = torch.tanh(self.conv(x)).transpose(1, 2)
        return self.out(torch.relu(self.fc(self.norm(x)))).mean(1)


def train(make, steps=100):
    torch.manual_seed(0)
    model = Mixed()
    opt = make(model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, 10, (16, 6), generator=g)
        y = torch.randn(16, 4, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(idx), y).backward()
        opt.step()
        sched.step()
    return [p.detach().clone() for p in model.parameters()]


CASES = {
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
            dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "sgd-nesterov": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                     dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd-dampening": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
                      dict(lr=0.05, momentum=0.8, dampening=0.3)),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-2),
             dict(lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-2)),
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=3e-3, weight_decay=0.1), dict(lr=3e-3, weight_decay=0.1)),
    "amsgrad": (lambda ps: torch.optim.AdamW(ps, lr=3e-3, weight_decay=0.05, amsgrad=True),
                dict(lr=3e-3, weight_decay=0.05)),
    "adamax": (lambda ps: torch.optim.Adamax(ps, lr=3e-3, weight_decay=1e-2), dict(lr=3e-3, weight_decay=1e-2)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "transforms"])
def test_matches_torch_optim(case, foreach, fused):
    """Ours (through the fused kernel where one exists, and transform by transform) against torch's
    foreach and for-loop implementations."""
    name = case.split("-")[0]
    make_torch, hp = CASES[case]
    ref = train(lambda m: _with_foreach(make_torch(m.parameters()), foreach))
    ours = train(lambda m: optimlab.create(m, name, fused=fused, **hp))
    scale = max(r.abs().max() for r in ref)
    err = max((a - b).abs().max() for a, b in zip(ref, ours)) / scale
    assert err <= 1e-6, f"{case}: max relative difference {err:.2e}"
    # and the run is not trivially static
    torch.manual_seed(0)
    init = list(Mixed().parameters())
    assert max((a - b).abs().max() for a, b in zip(init, ours)) > 1e-3


def _with_foreach(opt, foreach):
    for g in opt.param_groups:
        g["foreach"] = foreach
    return opt
