"""Lion and Signum against their papers' pseudo-code (optimlab.reference)."""

import pytest
import torch

import optimlab
from optimlab.reference import lion_step, signum_step


def run_both(name, hp, ref_step, ref_hp, steps=60):
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (5,), (3, 2, 2)]
    ours = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **hp)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g) + 0.3 * p.detach()  # depends on the iterate
            p.grad = grad
            ref_step(r, grad.clone(), st, **ref_hp)
        opt.step()
    return ours, refs


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_lion_matches_algorithm_2(wd):
    ours, refs = run_both("lion", dict(lr=0.01, betas=(0.9, 0.99), weight_decay=wd), lion_step,
                          dict(lr=0.01, beta1=0.9, beta2=0.99, wd=wd))
    for p, r in zip(ours, refs):
        torch.testing.assert_close(p.detach(), r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_signum_matches_algorithm_3(wd):
    ours, refs = run_both("signum", dict(lr=0.01, momentum=0.9, weight_decay=wd), signum_step,
                          dict(lr=0.01, beta=0.9, wd=wd))
    for p, r in zip(ours, refs):
        torch.testing.assert_close(p.detach(), r, rtol=1e-5, atol=1e-6)
