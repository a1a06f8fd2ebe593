"""Scale-invariant kernels never square a huge or tiny number: exact power-of-two rescaling first.

Properties: a polar factor / Schatten map of ``2^k·X`` is bit for bit that of ``X``; of ``1e30·X`` and
``1e-30·X`` it is that of ``X`` to rounding; 3e38-sized inputs, inputs beyond the working dtype's range
(float64 1e300 into float32, float32 1e5 into float16) and zero matrices give finite, correct results.
"""

import math

import pytest
import torch

from optimlab.linalg import (aol_newton_schulz, gram_newton_schulz, newton_schulz, orthogonalize, polar_svd,
                             qdwh, schatten_direction)
from optimlab.linalg.scaling import pow2_scale, saturate, scaled_eps

F32, F64, BF16, F16 = torch.float32, torch.float64, torch.bfloat16, torch.float16
TINY_EPS = 1e-300  # a floor below every norm (and AOL row sum of squares) used here: invariance is exact

KERNELS = {
    "ns_jordan": lambda G: newton_schulz(G, 5, "jordan", dtype=F32, eps=TINY_EPS),
    "ns_polar_express": lambda G: newton_schulz(G, 8, "polar_express", dtype=F32, eps=TINY_EPS),
    "aol": lambda G: aol_newton_schulz(G, 4, dtype=F32, eps=TINY_EPS),
    "gram": lambda G: gram_newton_schulz(G, 5, "dion", dtype=F32, eps=TINY_EPS),
    "gram_aol": lambda G: gram_newton_schulz(G, 4, "turbo", precondition="aol", dtype=F32, eps=TINY_EPS),
    "ns_bf16": lambda G: newton_schulz(G, 5, dtype=BF16, eps=TINY_EPS),
    "qdwh": lambda G: qdwh(G),
    "svd": lambda G: polar_svd(G),
    "schatten_qdwh": lambda G: schatten_direction(G, 0.5),
    "schatten_svd": lambda G: schatten_direction(G, 3.0, backend="svd"),
}


def matrices(seed=0, shape=(3, 12, 20)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [F32, BF16, F16, F64])
def test_pow2_scale_is_a_power_of_two_that_brings_the_max_near_one(dtype):
    fi = torch.finfo(dtype)
    X = torch.stack([torch.full((2, 3), v, dtype=dtype) for v in (1.0, 3.0, 1e-3, fi.max, fi.tiny / 4, 0.0)])
    X[:, 0, 0] = -X[:, 0, 0]
    f = pow2_scale(X)
    assert f.shape == (6, 1, 1) and f.dtype == dtype and torch.isfinite(f).all() and (f > 0).all()
    m, e = torch.frexp(f.double())
    assert (m == 0.5).all()  # exact powers of two
    peak = (X * f).abs().amax(dim=(-2, -1))
    assert ((peak[:3] >= 0.5) & (peak[:3] < 1)).all()
    assert (peak[3] < 4) and (peak[4] > 2**-24) and peak[5] == 0 and f[5] == 1
    rows = pow2_scale(X, -1)
    assert rows.shape == (6, 2, 1)


def test_scaled_eps_and_saturate():
    f = torch.tensor([[[2.0**-127]], [[1.0]], [[2.0**100]]])
    e = scaled_eps(1e-7, f, F32, power=2, floor=True)
    assert e[0] == torch.finfo(F32).tiny and e[1] == torch.tensor(1e-7) and e[2] == torch.finfo(F32).max
    x = torch.tensor([float("inf"), -float("inf"), 1.5])
    assert torch.equal(saturate(x), torch.tensor([torch.finfo(F32).max / 2, -torch.finfo(F32).max / 2, 1.5]))
    assert saturate(x, BF16)[0] == torch.finfo(BF16).max / 2


@pytest.mark.parametrize("name", list(KERNELS))
def test_power_of_two_multiples_give_identical_bits(name):
    f, G = KERNELS[name], matrices(1)
    ref = f(G)
    for k in (100, -100, 60):
        assert torch.equal(f(G * 2.0**k), ref), f"{name}: 2^{k}·G differs"


@pytest.mark.parametrize("name", list(KERNELS))
def test_extreme_scales_match_the_ordinary_result(name):
    f, G = KERNELS[name], matrices(2)
    ref = f(G).double()
    tol = 0.05 if name == "ns_bf16" else 1e-4  # bf16: differently rounded inputs, 5 steps
    for s in (1e30, 1e-30, 3e38 / G.abs().max().item()):
        out = f(G * s)
        assert torch.isfinite(out).all(), f"{name} at scale {s:g}"
        assert (out.double() - ref).abs().max() <= tol * ref.abs().max(), f"{name} at scale {s:g}"


@pytest.mark.parametrize("name", list(KERNELS))
def test_zero_stays_zero_and_a_saturated_rank_one_matrix_is_finite(name):
    f = KERNELS[name]
    assert torch.equal(f(torch.zeros(2, 6, 9)), torch.zeros(2, 6, 9))
    ones = torch.ones(6, 9)
    out = f(ones * 3e38)  # its Frobenius norm (2.2e39) and its Gram matrix overflow float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), f(ones).float(), atol=0.02 if name == "ns_bf16" else 1e-5, rtol=0)


def test_default_eps_keeps_torch_semantics_for_tiny_inputs():
    # X / max(‖X‖_F, eps): below eps the update is tiny (torch.optim.Muon's floor), not an orthogonal matrix
    G = matrices(3, (12, 20))
    out = newton_schulz(G * 1e-30, dtype=F32)
    assert torch.isfinite(out).all() and out.abs().max() < 1e-15
    # the floor applied by hand: X = G·1e-30 / 1e-7, then the iteration (eps = 1 > ‖X‖: no more scaling)
    expected = newton_schulz(G * 1e-30 / 1e-7, dtype=F32, eps=1.0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_inputs_beyond_the_working_dtype_range_are_rescaled_before_the_cast(dtype):
    G = matrices(4, (2, 10, 16)).double()
    for s in (2.0**1000, 2.0**-1000):  # ~1e301 and ~1e-301: neither fits float32 / bfloat16
        for method in ("newton_schulz", "gram"):
            out = orthogonalize(G * s, method, dtype=dtype, eps=TINY_EPS)
            assert torch.equal(out, orthogonalize(G, method, dtype=dtype, eps=TINY_EPS)), (method, s)
    H = matrices(5, (10, 16))
    assert torch.equal(newton_schulz(H * 2.0**17, dtype=F16, eps=1e-7), newton_schulz(H, dtype=F16, eps=1e-7))
    assert math.isfinite(newton_schulz(H * 1e5, dtype=F16).float().abs().max().item())


def test_aol_zero_rows_stay_zero_at_every_scale():
    G = matrices(6, (8, 20))
    G[3] = 0
    for s in (1.0, 1e30, 3e38 / G.abs().max().item(), 1e-30):
        out = aol_newton_schulz(G * s, dtype=F32, eps=1e-7)
        assert torch.isfinite(out).all() and (out[3] == 0).all(), s
