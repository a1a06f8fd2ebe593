"""Tests for optimlab.linalg: Newton–Schulz kernels, SVD oracle, diagnostics (schedules: test_schedules.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz as torch_ns

from optimlab.linalg import (
    SCHEDULES,
    newton_schulz,
    ns_coefficients,
    orthogonality_error,
    orthogonalize,
    polar_svd,
)
from optimlab.linalg.orthogonalize import _emulate_lowp, _newton_schulz_impl

JORDAN = (3.4445, -4.7750, 2.0315)
BF16 = torch.bfloat16
F32 = torch.float32



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def svals(X: torch.Tensor) -> np.ndarray:
    return torch.linalg.svdvals(X.double()).numpy()


# ----------------------------------------------------------------------------- parity with torch

SHAPES = [(64, 96), (96, 64), (128, 128), (33, 200), (200, 33)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("in_dtype", [F32, BF16])
def test_native_path_bit_identical_to_torch(shape, in_dtype):
    # Native working-dtype path = torch's op sequence: bit-identical (checked on MKL CPU).
    G = torch.randn(shape, generator=gen(1)).to(in_dtype)
    ref = torch_ns(G.clone(), JORDAN, 5, 1e-7)
    ours = _newton_schulz_impl(G, ns_coefficients("jordan", 5), None, BF16, 1e-7, emulate=False)
    assert ours.dtype == BF16 and ours.shape == G.shape
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("shape", SHAPES)
def test_default_path_matches_torch_to_bf16_rounding(shape):
    G = torch.randn(shape, generator=gen(2))
    ref = torch_ns(G.clone(), JORDAN, 5, 1e-7).double()
    ours = newton_schulz(G).double()
    if not _emulate_lowp(BF16, G.device):
        assert torch.equal(ours, ref)
        return
    # Emulated bf16 (fp32 GEMM + bf16 rounding after every op) differs from torch's bf16 GEMMs
    # only in the summation order.  Measured on these shapes and 512x512: max |diff| <= 5 bf16
    # ulps of the largest entry, relative Frobenius diff <= 6.7e-3, and both are equally far
    # (1.0-2.1 %) from the same iteration run in float64.
    ulp = 2.0 ** (math.floor(math.log2(ref.abs().max().item())) - 7)
    assert (ours - ref).abs().max().item() <= 8 * ulp
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-2
    exact = _newton_schulz_impl(G.to(BF16), ns_coefficients("jordan", 5), None, torch.float64, 1e-7, False)
    err_ours = ((ours - exact).norm() / exact.norm()).item()
    err_torch = ((ref - exact).norm() / exact.norm()).item()
    assert err_ours < 1.15 * err_torch


# ----------------------------------------------------------------------------- polar_svd oracle


def random_orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    return Q * torch.sign(torch.diagonal(R))


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40)])
def test_polar_svd_equals_independent_construction(shape):
    g = gen(3)
    G = torch.randn(shape, dtype=torch.float64, generator=g)
    # independent construction: polar(G) = G (G^T G)^{-1/2} = (G G^T)^{-1/2} G, with the
    # inverse square root of the small (full-rank) Gram matrix from a symmetric eigensolver
    if shape[0] >= shape[1]:
        w, V = torch.linalg.eigh(G.T @ G)
        ref = G @ (V * w.rsqrt()) @ V.T
    else:
        w, V = torch.linalg.eigh(G @ G.T)
        ref = (V * w.rsqrt()) @ V.T @ G
    torch.testing.assert_close(polar_svd(G), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(polar_svd(G.float()), ref.float(), atol=1e-5, rtol=0)
    assert polar_svd(G.float()).dtype == F32
    assert orthogonality_error(polar_svd(G)).item() < 1e-12


def test_polar_svd_orthogonal_equivariance_and_batch():
    g = gen(4)
    G = torch.randn(3, 20, 35, dtype=torch.float64, generator=g)
    P, Q = random_orthogonal(20, g), random_orthogonal(35, g)
    torch.testing.assert_close(polar_svd(P @ G @ Q), P @ polar_svd(G) @ Q, atol=1e-10, rtol=0)
    torch.testing.assert_close(polar_svd(G), torch.stack([polar_svd(x) for x in G]), atol=1e-12, rtol=0)


def test_polar_svd_rank_deficient_and_zero():
    g = gen(5)
    G = torch.randn(30, 4, generator=g) @ torch.randn(4, 50, generator=g)  # rank 4, fp32
    Q = polar_svd(G)
    s = svals(Q)
    np.testing.assert_allclose(s[:4], 1.0, atol=1e-6)
    np.testing.assert_allclose(s[4:], 0.0, atol=1e-6)
    U, _, Vh = torch.linalg.svd(G.double())
    torch.testing.assert_close(Q.double(), U[:, :4] @ Vh[:4], atol=1e-5, rtol=0)
    assert torch.equal(polar_svd(torch.zeros(2, 5, 7)), torch.zeros(2, 5, 7))


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_zero_and_rank_deficient(dtype, schedule):
    for shape in [(40, 60), (60, 40), (3, 40, 60)]:
        Z = newton_schulz(torch.zeros(shape), 5, schedule, dtype=dtype)
        assert Z.dtype == dtype and torch.equal(Z, torch.zeros(shape, dtype=dtype))
    g = gen(8)
    G = torch.randn(40, 3, generator=g) @ torch.randn(3, 60, generator=g)  # rank 3
    out = newton_schulz(G, 5, schedule, dtype=dtype)
    assert torch.isfinite(out).all()
    if dtype == F32:
        sv = svals(out)
        assert sv[:3].min() > 0.6 and sv[3:].max() < 1e-3  # null directions stay (nearly) null
    G = torch.zeros(40, 60)
    G[0, 0] = 1e-30  # tiny, below eps: no division blow-up
    assert torch.isfinite(newton_schulz(G, 5, schedule, dtype=dtype)).all()


def test_empty_and_steps_zero():
    assert newton_schulz(torch.zeros(0, 5)).shape == (0, 5)
    assert newton_schulz(torch.zeros(2, 0, 4), dtype=F32).shape == (2, 0, 4)
    G = torch.randn(20, 30, generator=gen(9))
    X = newton_schulz(G, 0, dtype=F32)
    assert torch.allclose(X, G / G.norm())
    X = newton_schulz(G, 0, "polar_express", dtype=F32)
    assert X.norm().item() == pytest.approx(1 / 1.01, rel=1e-6)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("schedule", ["jordan", "polar_express"])
def test_batched_equals_per_matrix(dtype, schedule):
    for shape in [(3, 2, 48, 80), (4, 80, 48)]:
        G = torch.randn(shape, generator=gen(10))
        out = newton_schulz(G, 5, schedule, dtype=dtype)
        flat = G.reshape(-1, *shape[-2:])
        per = torch.stack([newton_schulz(x, 5, schedule, dtype=dtype) for x in flat]).reshape(shape)
        assert out.shape == shape and out.dtype == dtype
        torch.testing.assert_close(out, per, atol=1e-6, rtol=0)  # bit-identical on MKL


@pytest.mark.parametrize("shape", [(64, 96), (96, 64), (2, 64, 96)])
def test_input_not_modified_nor_aliased(shape):
    for G in (torch.randn(shape, generator=gen(11)).to(BF16), torch.randn(shape, generator=gen(11))):
        before = G.clone()
        for dtype in (BF16, F32, None):
            for method in ("newton_schulz", "svd"):
                out = orthogonalize(G, method, dtype=dtype)
                assert torch.equal(G, before)
                assert out.untyped_storage().data_ptr() != G.untyped_storage().data_ptr()
                out.mul_(0)  # writing the result must not reach G
                assert torch.equal(G, before)
    Gt = torch.randn(shape, generator=gen(12)).to(BF16).mT  # non-contiguous input
    before = Gt.clone()
    newton_schulz(Gt)
    assert torch.equal(Gt, before)


def test_differentiable_when_g_requires_grad():
    G = torch.randn(30, 50, generator=gen(13), requires_grad=True)
    out = newton_schulz(G, 5, dtype=F32)
    out.sum().backward()
    assert G.grad is not None and torch.isfinite(G.grad).all()
    assert torch.equal(out.detach(), newton_schulz(G.detach(), 5, dtype=F32))


def test_torch_compile_fullgraph():
    G = torch.randn(2, 32, 48, generator=gen(14))
    f = torch.compile(newton_schulz, backend="eager", fullgraph=True)  # fails on any graph break
    assert torch.equal(f(G, 5, "polar_express"), newton_schulz(G, 5, "polar_express"))


def test_orthogonalize_dispatch_and_error_metric():
    G = torch.randn(2, 30, 50, generator=gen(15), dtype=torch.float64)
    assert torch.equal(orthogonalize(G, steps=3, schedule="you"), newton_schulz(G, 3, "you"))
    Q = orthogonalize(G, "svd", dtype=None)
    assert Q.dtype == torch.float64 and orthogonality_error(Q).max().item() < 1e-12
    assert orthogonalize(G, "svd").dtype == BF16
    D = torch.diag(torch.tensor([1.5, 1.0, 0.25]))
    assert orthogonality_error(D).item() == pytest.approx(0.75)
    err = orthogonality_error(torch.zeros(4, 3, 5))
    assert err.shape == (4,) and torch.equal(err, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: newton_schulz(torch.ones(5)), "ndim=1"),
        (lambda: orthogonalize(torch.tensor(1.0)), "ndim=0"),
        (lambda: polar_svd(torch.ones(3)), "ndim=1"),
        (lambda: orthogonalize(torch.ones(3, 3), "qr"), "unknown method 'qr'"),
        (lambda: newton_schulz(torch.ones(3, 3), schedule="foo"), "'foo'"),
        (lambda: newton_schulz(torch.ones(3, 3), steps=-2), "-2"),
        (lambda: newton_schulz(torch.ones(3, 3), eps=0.0), "eps"),
        (lambda: newton_schulz(torch.ones(3, 3), dtype=torch.int32), "torch.int32"),
        (lambda: newton_schulz(torch.ones(3, 3, dtype=torch.int64), dtype=None), "torch.int64"),
        (lambda: orthogonality_error(torch.ones(4)), "ndim=1"),
    ],
)
def test_bad_inputs(call, needle):
    with pytest.raises(ValueError) as e:
        call()
    assert needle in str(e.value)
