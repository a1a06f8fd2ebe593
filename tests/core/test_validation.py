"""Bad input gets a clear error naming the thing and the value. One table, one test."""

import re

import pytest
import torch

import optimlab
from models import mlp

P = lambda: [torch.zeros(3, 3, requires_grad=True)]  # noqa: E731

BAD = [
    # (call, error type, message regex)
    (lambda: optimlab.create(mlp(), "muon", momentum=1.5), ValueError,
     r"muon: momentum must be in \[0, 1\), got 1.5"),
    (lambda: optimlab.create(mlp(), "adamw", lr=-1), ValueError, r"adamw: lr must be in \[0, inf\), got -1"),
    (lambda: optimlab.create(mlp(), "adamw", betas=(0.9, 1.0)), ValueError,
     r"adamw: betas\[1\] must be in \[0, 1\), got 1.0"),
    (lambda: optimlab.create(mlp(), "adamw", betas=0.9), ValueError, r"adamw: betas must be a pair .* got 0.9"),
    (lambda: optimlab.create(mlp(), "adamw", eps=float("nan")), ValueError, r"adamw: eps must be in .* got nan"),
    (lambda: optimlab.create(mlp(), "adamw", momentum=0.9), TypeError,
     r"adamw: unexpected hyperparameter 'momentum'; valid names are betas, eps, lr, weight_decay"),
    (lambda: optimlab.create(mlp(), "sgd", nesterov=True), ValueError,
     r"sgd\[matrix\]: nesterov=True needs momentum > 0 and dampening = 0, got momentum=0.0"),
    (lambda: optimlab.create(mlp(), "sgd", nesterov=1), TypeError, r"sgd: nesterov must be a bool, got 1"),
    (lambda: optimlab.create(mlp(), "muon", ns_steps=2.5), ValueError, r"muon: ns_steps must be an integer, got 2.5"),
    (lambda: optimlab.create(mlp(), "muon", ns_steps=0), ValueError, r"muon: ns_steps must be in \[1, 100\], got 0"),
    (lambda: optimlab.create(mlp(), "muon", ns_dtype="int8"), ValueError, r"muon: ns_dtype must be a floating dtype"),
    (lambda: optimlab.create(mlp(), "muon", ns_coefficients="fast"), ValueError, r"muon\[matrix\]: .*'fast'"),
    (lambda: optimlab.create(mlp(), "muon", adjust_lr_fn="big"), ValueError,
     r"muon: adjust_lr_fn must be one of 'original', 'match_rms_adamw', 'none', got 'big'"),
    (lambda: optimlab.create(mlp(), "muon", betas=(0.9, 0.9)), TypeError,
     r"muon: unexpected hyperparameter 'betas'.*set other roles with per_role|valid names are"),
    (lambda: optimlab.create(mlp(), "muon", per_role={"vector": {"lr": -2}}), ValueError,
     r"muon\[vector\]: lr must be in \[0, inf\), got -2"),
    (lambda: optimlab.create(mlp(), "muon", per_role={"bias": {"lr": 1}}), ValueError,
     r"muon: per_role keys must be roles"),
    (lambda: optimlab.create(mlp(), "muonn"), ValueError, r"unknown optimizer 'muonn'; did you mean 'muon'"),
    (lambda: optimlab.create(mlp(), "adamw", nonfinite="zero"), ValueError,
     r"adamw: nonfinite must be one of \('error', 'skip', 'ignore'\), got 'zero'"),
    (lambda: optimlab.create([], "adamw"), ValueError, r"empty parameter list"),
    (lambda: optimlab.create(P(), "adamw", head="x"), TypeError, r"head=, embedding= and roles= need an nn.Module"),
    (lambda: optimlab.describe("lino"), ValueError, r"unknown optimizer 'lino'; did you mean 'lion'"),
    (lambda: optimlab.create([{"params": P(), "role": "hidden"}], "adamw"), ValueError,
     r"role must be one of .* got 'hidden'"),
]


@pytest.mark.parametrize("call,err,pattern", BAD, ids=[re.sub(r"\W+", "_", b[2])[:40] for b in BAD])
def test_bad_input_message(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()


def test_sparse_and_complex_rejected():
    emb = torch.nn.Embedding(5, 3, sparse=True)
    opt = optimlab.create(emb, "adamw")
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="adamw: sparse gradients are not supported"):
        opt.step()
    z = torch.zeros(2, 2, dtype=torch.complex64, requires_grad=True)
    opt = optimlab.create([z], "adamw")
    z.grad = torch.ones_like(z)
    with pytest.raises(RuntimeError, match="complex parameters"):
        opt.step()


def test_load_state_dict_mismatches_are_named():
    model = mlp()
    opt = optimlab.create(model, "adamw")
    model(torch.randn(2, 7)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"state dict was saved by optimizer 'adamw'"):
        optimlab.create(mlp(), "adam").load_state_dict(sd)
    with pytest.raises(ValueError, match=r"has shape \(16, 8\), saved \(16, 7\)"):
        optimlab.create(mlp(d_in=8), "adamw").load_state_dict(sd)
    with pytest.raises(ValueError, match=r"not an optimlab state dict"):
        optimlab.create(mlp(), "adamw").load_state_dict(torch.optim.AdamW(mlp().parameters()).state_dict())
    with pytest.raises(ValueError, match=r"role 'matrix', saved role 'head'|has 3 param groups"):
        optimlab.create(mlp(), "adamw", head=None).load_state_dict(sd)
    broken = opt.state_dict()
    broken["state"][0].pop("adam.exp_avg_sq")
    fresh = optimlab.create(mlp(), "adamw")
    with pytest.raises(ValueError, match=r"saved state keys .* != expected"):
        fresh.load_state_dict(broken)
    assert not any(fresh.state.values())  # nothing was loaded
