"""Properties every orthogonalization backend shares, through the one dispatcher ``orthogonalize``."""

from __future__ import annotations

import pytest
import torch

from optimlab.linalg import METHODS, PRECONDITIONERS, orthogonalize, polar_error, polar_svd

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16
# (method, precondition, schedule, steps): every backend, NS-type ones with both scalings
BACKENDS = [("newton_schulz", "frobenius", "jordan", 5), ("newton_schulz", "aol", "turbo", 4),
            ("gram", "frobenius", "polar_express", 5), ("gram", "aol", "turbo", 4),
            ("qdwh", "frobenius", "jordan", 5), ("svd", "frobenius", "jordan", 5)]



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(G, method, pre, schedule, steps, dtype=F32):
    return orthogonalize(G, method, steps=steps, schedule=schedule, dtype=dtype, precondition=pre)


def test_names():
    assert METHODS == ("newton_schulz", "gram", "qdwh", "svd") and PRECONDITIONERS == ("frobenius", "aol")


@pytest.mark.parametrize("method", ["svd", "qdwh", "newton_schulz", "gram"])
def test_orthogonal_equivariance(method):
    """polar(P G Q) = P polar(G) Q for orthogonal P, Q: exactly for SVD and QDWH; for the polynomial
    iterations too (every step is a polynomial in G Gᵀ times G), here up to float64 round-off."""
    g = gen(0)
    G = torch.randn(2, 20, 44, dtype=F64, generator=g)
    P, _ = torch.linalg.qr(torch.randn(20, 20, dtype=F64, generator=g))
    Q, _ = torch.linalg.qr(torch.randn(44, 44, dtype=F64, generator=g))
    f = lambda A: orthogonalize(A, method, steps=5, schedule="polar_express", dtype=F64)  # noqa: E731
    torch.testing.assert_close(f(P @ G @ Q), P @ f(G) @ Q, atol=1e-11, rtol=0)


def test_newton_schulz_equivariance_in_float32():
    g = gen(1)
    G = torch.randn(32, 48, generator=g)
    P, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    Q, _ = torch.linalg.qr(torch.randn(48, 48, generator=g))
    for method in ("newton_schulz", "gram"):
        a = orthogonalize(P @ G @ Q, method, dtype=F32)
        b = P @ orthogonalize(G, method, dtype=F32) @ Q
        assert (a - b).abs().max() < 1e-4  # round-off of the rotated input only


@pytest.mark.parametrize("method, pre, schedule, steps", BACKENDS)
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_shapes_zero_and_rank_deficient(method, pre, schedule, steps, dtype):
    g = gen(2)
    cases = {
        "tall": torch.randn(40, 24, generator=g),
        "wide": torch.randn(24, 40, generator=g),
        "stack3d": torch.randn(4, 8, 16, generator=g),  # per-head stack: each slice its own matrix
        "batch4d": torch.randn(2, 3, 8, 12, generator=g),
        "zero": torch.zeros(3, 10, 14),
        "rank2": torch.randn(3, 20, 2, generator=g) @ torch.randn(3, 2, 30, generator=g),
        "tiny": torch.full((12, 9), 1e-30),
    }
    for name, G in cases.items():
        X = run(G, method, pre, schedule, steps, dtype)
        assert X.shape == G.shape and X.dtype == dtype, name
        assert torch.isfinite(X).all(), name
        if name == "zero":
            assert torch.equal(X, torch.zeros_like(X))
        if name == "stack3d":  # slices are independent
            per = torch.stack([run(x, method, pre, schedule, steps, dtype) for x in G])
            torch.testing.assert_close(X, per, atol=1e-5 if dtype == F32 else 2e-2, rtol=0)


def test_conv_kernel_flattened_and_error_metric():
    g = gen(3)
    W = torch.randn(8, 4, 3, 3, generator=g)
    M = W.reshape(8, -1)
    for method, pre, schedule, steps in BACKENDS:
        exact = method in ("qdwh", "svd")  # these compute in the input's precision: give them float64
        X = run(M.double() if exact else M, method, pre, schedule, steps, F64 if exact else F32)
        assert X.shape == (8, 36)
        err = polar_error(X, M).item()
        limit = {"svd": 1e-12, "qdwh": 1e-9}.get(method, 0.35)
        assert err < limit, (method, pre, err)
    assert polar_error(polar_svd(M), M).item() < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        polar_error(M, M.T)


@pytest.mark.parametrize("call, needle", [
    (lambda: orthogonalize(torch.ones(3, 3), "qr"), "unknown method 'qr'"),
    (lambda: orthogonalize(torch.ones(3, 3), precondition="spectral"), "precondition"),
    (lambda: orthogonalize(torch.ones(3, 4), "gram", restarts=(-1,)), "restarts"),
    (lambda: orthogonalize(torch.ones(4), "qdwh"), "ndim=1"),
])
def test_bad_inputs(call, needle):
    with pytest.raises(ValueError) as e:
        call()
    assert needle in str(e.value)
