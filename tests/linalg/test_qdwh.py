"""QDWH polar decomposition (Nakatsukasa, Bai & Gygi 2010) and the Schatten spectral map built on it."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.linalg import polar_svd, qdwh, schatten_direction
from optimlab.linalg.qdwh import QDWH_L0, qdwh_coefficients
from optimlab.reference.spectral_maps import schatten_map

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def prescribed(m: int, n: int, kappa: float, g: torch.Generator, batch: int = 2) -> torch.Tensor:
    """Random U, V; singular values log-spaced over [1/kappa, 1]."""
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(batch, m, k, dtype=F64, generator=g))
    V, _ = torch.linalg.qr(torch.randn(batch, n, k, dtype=F64, generator=g))
    s = torch.logspace(0, -math.log10(kappa), k, dtype=F64)
    return (U * s) @ V.mT


# ----------------------------------------------------------------------------- the weights


def test_weights_follow_the_paper():
    # ell = 1 gives Halley's iteration x (3 + x²) / (1 + 3x²); the iteration count is the paper's:
    # at most 6 steps for ell_0 = 1e-16 in double precision.
    assert qdwh_coefficients(1.0, -1.0)[0] == pytest.approx((3.0, 1.0, 3.0))  # tol < 0: iterate anyway
    assert qdwh_coefficients(1.0, 0.0) == []  # already converged
    assert len(qdwh_coefficients(1e-16, 10 * torch.finfo(F64).eps)) == 6
    assert [len(qdwh_coefficients(QDWH_L0[d], 10 * torch.finfo(d).eps)) for d in (F64, F32)] == [5, 4]
    ell = 1e-12
    for a, b, c in qdwh_coefficients(ell, 1e-15):
        assert b == pytest.approx((a - 1) ** 2 / 4) and c == pytest.approx(a + b - 1)
        nxt = ell * (a + b * ell**2) / (1 + c * ell**2)
        # the rational map sends [ell, 1] into [nxt, 1]: check on a grid
        x = torch.logspace(math.log10(ell), 0, 2001, dtype=F64)
        y = x * (a + b * x**2) / (1 + c * x**2)
        assert y.min() >= nxt * (1 - 1e-12) and y.max() <= 1 + 1e-12
        ell = nxt
    with pytest.raises(ValueError, match="l0"):
        qdwh_coefficients(0.0, 1e-10)


# ----------------------------------------------------------------------------- QDWH = SVD polar


@pytest.mark.parametrize("shape", [(60, 36), (36, 60), (40, 40)])
@pytest.mark.parametrize("kappa", [1e1, 1e4, 1e8])
def test_equals_svd_polar_in_float64(shape, kappa):
    G = prescribed(*shape, kappa, gen(int(math.log10(kappa))))
    U = qdwh(G)
    err = (U - polar_svd(G)).abs().max().item()
    assert err < 1e-6, err  # measured: 2e-15 (kappa 10), 1e-12 (1e4), 2e-9 (1e8)
    assert U.dtype == F64 and U.shape == G.shape


def test_float32_and_bf16_inputs():
    G = prescribed(48, 30, 1e3, gen(7))
    U32 = qdwh(G.float())
    assert U32.dtype == F32 and (U32.double() - polar_svd(G)).abs().max() < 2e-4
    Ubf = qdwh(G.to(BF16))
    assert Ubf.dtype == BF16  # computed in float32, returned in the input dtype
    assert (Ubf.double() - polar_svd(G.to(BF16).double())).abs().max() < 1e-2


def test_hermitian_factor_reconstructs_the_input():
    g = gen(8)
    for shape in [(30, 20), (20, 30)]:
        G = torch.randn(3, *shape, dtype=F64, generator=g)
        U, H = qdwh(G, return_hermitian=True)
        k = min(shape)
        assert H.shape == (3, k, k)
        torch.testing.assert_close(H, H.mT, atol=0, rtol=0)
        assert torch.linalg.eigvalsh(H).min() > -1e-12
        Gt = G if shape[0] >= shape[1] else G.mT
        Ut = U if shape[0] >= shape[1] else U.mT
        torch.testing.assert_close(Ut @ H, Gt, atol=1e-12, rtol=0)


def test_zero_rank_deficient_batched_empty():
    assert torch.equal(qdwh(torch.zeros(2, 7, 5)), torch.zeros(2, 7, 5))
    assert qdwh(torch.zeros(0, 4)).shape == (0, 4)
    g = gen(9)
    # Rank 3.  QDWH maps singular values below ell_0 by the same odd rational functions: 0 stays 0,
    # round-off-level ones are lifted part of the way (measured 1.6e-3 in float64, 0.40 in float32)
    # - unlike polar_svd, which zeroes everything under its rank tolerance.
    A, B = torch.randn(40, 3, dtype=F64, generator=g), torch.randn(3, 60, dtype=F64, generator=g)
    for dtype, null_max in ((F64, 1e-2), (F32, 0.5)):
        s = torch.linalg.svdvals(qdwh((A @ B).to(dtype)).double())
        assert (s[:3] - 1).abs().max() < 1e-5 and s[3:].max() < null_max
    S = torch.randn(2, 3, 12, 20, dtype=F64, generator=g)
    torch.testing.assert_close(qdwh(S), torch.stack([qdwh(x) for x in S.reshape(-1, 12, 20)]).reshape(S.shape),
                               atol=1e-13, rtol=0)


def test_orthogonal_equivariance():
    g = gen(10)
    G = torch.randn(24, 40, dtype=F64, generator=g)
    P, _ = torch.linalg.qr(torch.randn(24, 24, dtype=F64, generator=g))
    Q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=F64, generator=g))
    torch.testing.assert_close(qdwh(P @ G @ Q), P @ qdwh(G) @ Q, atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- Schatten map


@pytest.mark.parametrize("q", [0.5, 1.0, 1.5, 2.0])
@pytest.mark.parametrize("shape", [(30, 18), (18, 30)])
def test_schatten_direction_matches_the_literal_formula(q, shape):
    G = prescribed(*shape, 1e3, gen(11), batch=3)
    ref = torch.stack([schatten_map(x, q) for x in G])  # (M_n M_nᵀ)^(−c) M_n, c = 1 − q/2
    for backend in ("qdwh", "svd"):
        torch.testing.assert_close(schatten_direction(G, q, backend=backend), ref, atol=1e-9, rtol=1e-9)
    if q != 1.0:  # a deliberately wrong variant: the exponent q instead of q − 1
        wrong = schatten_direction(G, q + 1.0, backend="svd") if q < 2 else schatten_direction(G, 1.0)
        assert (wrong - ref).abs().max() > 1e-3


def test_schatten_special_cases():
    G = torch.randn(2, 20, 33, dtype=F64, generator=gen(12))
    torch.testing.assert_close(schatten_direction(G, 1.0), polar_svd(G), atol=1e-12, rtol=0)
    torch.testing.assert_close(schatten_direction(G, 2.0), G / G.norm(dim=(-2, -1), keepdim=True), atol=1e-12, rtol=0)
    # q < 1 inverts the spectrum: the output's singular values decrease with the input's
    s_in = torch.linalg.svdvals(G[0])
    s_out = torch.linalg.svdvals(schatten_direction(G[0], 0.5))
    U, _, Vh = torch.linalg.svd(G[0], full_matrices=False)
    weights = torch.diagonal(U.T @ schatten_direction(G[0], 0.5) @ Vh.T)
    assert (weights[1:] >= weights[:-1]).all()
    assert (s_out.max() / s_out.min()).item() == pytest.approx(((s_in.max() / s_in.min()) ** 0.5).item(), rel=1e-9)
    # float32 and bf16 inputs are computed in float32
    out = schatten_direction(G.float(), 0.5)
    assert out.dtype == F32 and (out.double() - schatten_direction(G, 0.5)).abs().max() < 1e-3


def test_schatten_zero_rank_deficient_and_errors():
    assert torch.equal(schatten_direction(torch.zeros(3, 8, 5), 0.5), torch.zeros(3, 8, 5))
    g = gen(13)
    G = torch.randn(30, 3, generator=g) @ torch.randn(3, 20, generator=g)
    for q in (0.25, 0.5, 1.0, 1.5):
        out = schatten_direction(G, q)
        assert torch.isfinite(out).all()
        assert torch.linalg.svdvals(out.double())[3:].max() < 1e-4  # null directions stay null
    for bad, needle in [(0.0, "q must be"), (float("nan"), "q must be"), (True, "q must be")]:
        with pytest.raises(ValueError, match=needle):
            schatten_direction(G, bad)
    with pytest.raises(ValueError, match="backend"):
        schatten_direction(G, 1.0, backend="eig")
