"""Matrix rules at gradients of 1e±30: the float32 step equals the float64 step (no overflow to a zero step).

Squares of 1e30 overflow float32 (and of 1e-30 underflow), but not float64, so the float64 run of the same
rule is the oracle. Before the power-of-two rescaling, e.g. AuON and MuonEq returned a zero update at 1e30
(``X / inf``) and Turbo-Muon, the router's one-sided polar and Dion returned NaN.
"""

import pytest
import torch
from torch import nn

import optimlab

BASE = {"lr": 1.0, "weight_decay": 0.0}
EMA = {**BASE, "momentum": 0.0}
CASES = {  # id: (recipe, role, hyperparameters, shape)
    "muon": ("muon", "matrix", {**EMA, "ns_dtype": "param"}, (12, 20)),
    "muon_polar_express": ("muon", "matrix", {**EMA, "ns_dtype": "param", "ns_coefficients": "polar_express",
                                              "ns_steps": 8}, (12, 20)),
    "muon_gram": ("muon", "matrix", {**EMA, "ns_dtype": "param", "ortho_backend": "gram"}, (8, 32)),
    "turbo_muon": ("turbo_muon", "matrix", {**EMA, "ns_dtype": "param"}, (12, 20)),
    "muoneq_r": ("muoneq", "matrix", {**EMA, "ns_dtype": "param"}, (12, 20)),
    "muoneq_rc": ("muoneq", "matrix", {**EMA, "ns_dtype": "param", "equilibrate": "rc"}, (12, 20)),
    "auon": ("auon", "matrix", EMA, (12, 20)),
    "trust_region_frobenius": ("trust_region", "matrix", {**EMA, "norm": "frobenius"}, (12, 20)),
    "adamuon": ("adamuon", "matrix", {**EMA, "ns_dtype": "param"}, (12, 20)),
    "freon": ("freon", "matrix", {**EMA, "schatten_q": 0.5}, (12, 20)),
    "kaon": ("kaon", "matrix", EMA, (12, 20)),
    "dion": ("dion", "matrix", {**BASE, "momentum": 0.5}, (12, 20)),
    "row_norm_embedding": ("symmetry_muon", "embedding", EMA, (20, 8)),
    "hybrid_embedding": ("symmetry_hybrid", "embedding", EMA, (20, 8)),
    "router_left_spectral": ("symmetry_hybrid", "router", EMA, (4, 8)),
    "down_columns": ("symmetry_hybrid", "down", EMA, (8, 16)),
}


def step_update(case, G, dtype):
    recipe, role, hp, shape = CASES[case]
    hp = {k: (dtype if v == "param" else v) for k, v in hp.items()}
    p = nn.Parameter(torch.zeros(shape, dtype=dtype))
    opt = optimlab.create([{"params": [p], "role": role, **hp}], recipe)
    p.grad = G.to(dtype)
    opt.step()
    return -p.detach()


@pytest.mark.parametrize("scale", [1e30, 1e-30])
@pytest.mark.parametrize("case", list(CASES))
def test_float32_step_equals_the_float64_step_at_extreme_scale(case, scale):
    shape = CASES[case][3]
    G = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    G = (G * scale).float().double()  # exactly representable in both dtypes
    u32, u64 = step_update(case, G, torch.float32), step_update(case, G, torch.float64)
    assert torch.isfinite(u32).all()
    ref = u64.abs().max()
    if case == "router_left_spectral":  # the polar-gradient scale ν grows with the gradient
        assert ref > 0
    assert (u32.double() - u64).abs().max() <= 1e-4 * ref, f"{case} at {scale:g}: float32 step off"
