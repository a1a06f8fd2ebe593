"""Inverse p-th roots and the eigenbasis refresh against fp64 eigh, on spectra with κ up to 1e8."""

import pytest
import torch

from optimlab.linalg.roots import eigenbasis, inv_root, inv_root_eigh, inv_root_newton, refresh_eigenbasis


def spd(d, kappa, batch=3, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(batch, d, d, generator=g, dtype=torch.float64))
    lam = torch.logspace(0, -torch.log10(torch.tensor(float(kappa))).item(), d, dtype=torch.float64) * scale
    return (Q * lam.unsqueeze(-2)) @ Q.mT


def dense(A, p, eps):
    lam, V = torch.linalg.eigh(A.double())
    return (V * (lam.clamp_min(0) + eps).pow(-1.0 / p).unsqueeze(-2)) @ V.mT


def rel(X, R):
    return ((X.double() - R).norm(dim=(-2, -1)) / R.norm(dim=(-2, -1))).max().item()


@pytest.mark.parametrize("method", ["eigh", "newton"])
@pytest.mark.parametrize("p", [2, 4, 3])
@pytest.mark.parametrize("kappa", [1e2, 1e4, 1e8])
def test_fp64_equals_dense_eigh(method, p, kappa):
    A = spd(24, kappa)
    assert rel(inv_root(A, p, 0.0, method), dense(A, p, 0.0)) < (1e-8 if kappa < 1e8 else 5e-9 * kappa**0.25)


@pytest.mark.parametrize("method", ["eigh", "newton"])
@pytest.mark.parametrize("p", [2, 4])
@pytest.mark.parametrize("kappa", [1e2, 1e4, 1e8])
def test_fp32_with_damping(method, p, kappa):
    # fp32 cannot resolve eigenvalues below ~1e-7·λmax: damping ε = 1e-6·λmax makes the root well posed;
    # a backward-stable fp32 root then errs by ~ u·cond(A + εI) (u = 6e-8), the bound tested
    A = spd(24, kappa).float()
    eps = 1e-6
    assert rel(inv_root(A, p, eps, method), dense(A, p, eps)) < 2e-8 * min(kappa, 1 / eps) + 1e-5


def test_fractional_exponent_and_damping_formula():
    A = spd(10, 1e3)
    R = dense(A, 2.5, 1e-3)
    assert rel(inv_root_eigh(A, 2.5, 1e-3), R) < 1e-12
    # X^p (A + εI) = I
    X = inv_root_newton(A, 4, 1e-3)
    I = torch.linalg.matrix_power(X, 4) @ (A + 1e-3 * torch.eye(10, dtype=A.dtype))
    assert (I - torch.eye(10, dtype=A.dtype)).abs().max() < 1e-9


@pytest.mark.parametrize("method", ["eigh", "newton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_rank_deficient_and_huge_are_finite(method, dtype):
    d = 8
    zero = torch.zeros(2, d, d, dtype=dtype)
    X = inv_root(zero, 4, 1e-12, method)
    assert torch.isfinite(X).all()
    torch.testing.assert_close(X.double(), torch.eye(d, dtype=torch.float64).expand(2, d, d) * 1e3, rtol=1e-4, atol=0)
    g = torch.randn(d, 1, dtype=torch.float64)
    rank1 = (g @ g.mT).to(dtype)
    assert torch.isfinite(inv_root(rank1, 4, 1e-12, method)).all()
    # statistics of gradients of 1e19 (entries ~1e38 in float32) and of 1e-30
    for s in (1e38 / 64 if dtype == torch.float32 else 1e300, 1e-60 if dtype == torch.float32 else 1e-300):
        A = (spd(d, 1e3, batch=1) * s).to(dtype)
        if dtype == torch.float32 and s < 1:
            A = (spd(d, 1e3, batch=1) * 1e-36).to(dtype)
        X = inv_root(A, 4, 0.0, method)
        assert torch.isfinite(X).all()
        if dtype == torch.float64 or s > 1:
            assert rel(X, dense(A.double(), 4, 0.0)) < 1e-3


def test_batched_equals_one_by_one():
    A = spd(12, 1e4, batch=4)
    X = inv_root(A, 4, 1e-8, "eigh")
    for i in range(4):
        torch.testing.assert_close(X[i], inv_root(A[i], 4, 1e-8, "eigh"), rtol=1e-12, atol=0)


def test_refresh_converges_to_eigenbasis():
    A = spd(16, 1e3, batch=2, seed=3)
    Q0 = eigenbasis(A + 1e-2 * spd(16, 10, batch=2, seed=4))  # a nearby basis (SOAP: the previous one)
    Q = Q0
    for _ in range(60):
        Q, order = refresh_eigenbasis(A, Q)
    assert order.shape == (2, 16)
    # Q' is orthonormal and diagonalises A (off-diagonal mass small), eigenvalues descending
    torch.testing.assert_close(Q.mT @ Q, torch.eye(16, dtype=A.dtype).expand(2, 16, 16), rtol=0, atol=1e-12)
    D = Q.mT @ A @ Q
    off = D - torch.diag_embed(torch.diagonal(D, dim1=-2, dim2=-1))
    assert off.norm() / D.norm() < 1e-6
    assert (torch.diff(torch.diagonal(D, dim1=-2, dim2=-1)) <= 1e-12).all()


def test_refresh_permutation_tracks_columns():
    A = spd(6, 1e2, batch=1)
    Q = eigenbasis(A)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    Qn, order = refresh_eigenbasis(A, Q[..., perm])
    # the shuffled basis is an eigenbasis already: order undoes the shuffle, and Qn equals Q up to signs
    assert torch.equal(perm[order[0]], torch.arange(6))
    torch.testing.assert_close(Qn.abs(), Q.abs(), rtol=0, atol=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        inv_root(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="p must"):
        inv_root(torch.eye(3), 0)
    with pytest.raises(ValueError, match="eps must"):
        inv_root(torch.eye(3), 2, -1.0)
    with pytest.raises(ValueError, match="method"):
        inv_root(torch.eye(3), 2, method="svd")
    with pytest.raises(ValueError, match="integer"):
        inv_root_newton(torch.eye(3), 2.5)
