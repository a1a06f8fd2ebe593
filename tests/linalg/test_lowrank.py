"""Low-rank kernels: power iteration and the randomized range finder recover dominant subspaces, in batches,
without NaN on zero input."""

import pytest
import torch

from optimlab.linalg import column_normalize, orthonormal_basis, power_iteration_step, range_finder, subspace_distance

F64 = torch.float64


def gapped(m, n, r, gap=10.0, batch=(), seed=0):
    """Matrices whose top-r singular values (gap·(2..1)) are well separated from the rest (≤ 1)."""
    g = torch.Generator().manual_seed(seed)
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=F64))
    s = torch.cat([gap * torch.linspace(2, 1, r, dtype=F64), torch.linspace(1, 0.1, k - r, dtype=F64)])
    return U @ torch.diag_embed(s.expand(*batch, k)) @ V.mT, U[..., :r], V[..., :r]


def test_power_iteration_recovers_top_subspace():
    A, U, V = gapped(30, 20, 4)
    Q = torch.randn(20, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    dist = []
    for _ in range(8):
        P, R = power_iteration_step(A, Q)
        Q = column_normalize(R)
        dist.append(subspace_distance(P, U).item())
    assert dist[-1] < 1e-7 < dist[0]  # converges at rate σ5/σ4 = 0.1 per step
    assert subspace_distance(orthonormal_basis(R), V) < 1e-7
    torch.testing.assert_close(P.T @ P, torch.eye(4, dtype=F64), atol=1e-12, rtol=0)
    # P Rᵀ = P Pᵀ A is the best rank-4 approximation once span(P) is the top subspace
    torch.testing.assert_close(P @ R.T, U @ U.T @ A, atol=1e-8, rtol=0)


def test_power_iteration_is_batched():
    A, _, _ = gapped(12, 7, 3, batch=(3,))
    Q = torch.randn(3, 7, 3, dtype=F64)
    P, R = power_iteration_step(A, Q)
    for i in range(3):
        Pi, Ri = power_iteration_step(A[i], Q[i])
        torch.testing.assert_close(P[i] @ P[i].T, Pi @ Pi.T, atol=1e-12, rtol=0)
        torch.testing.assert_close(P[i] @ R[i].T, Pi @ Ri.T, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(40, 25), (25, 40)])
def test_range_finder_recovers_top_subspace(shape):
    A, U, _ = gapped(*shape, 5, batch=(2,))
    Q = range_finder(A, 5, iters=2, generator=torch.Generator().manual_seed(0))
    assert Q.shape == (2, shape[0], 5)
    # error ~ (σ6/σ5)^(2q+1) = 0.1^5 for q = 2 subspace iterations; more iterations, smaller error
    assert subspace_distance(Q, U).max() < 1e-4
    assert subspace_distance(range_finder(A, 5, iters=5, generator=torch.Generator().manual_seed(0)), U).max() < 1e-9
    torch.testing.assert_close(Q.mT @ Q, torch.eye(5, dtype=F64).expand(2, 5, 5), atol=1e-12, rtol=0)


def test_zero_matrix_gives_no_nan():
    Z = torch.zeros(2, 6, 4)
    P, R = power_iteration_step(Z, torch.randn(2, 4, 3))
    Q = column_normalize(R)
    for t in (P, R, Q, range_finder(Z, 2), orthonormal_basis(torch.zeros(5, 2))):
        assert torch.isfinite(t).all()
    assert torch.equal(Q, torch.zeros_like(Q)) and torch.equal(P @ Q.mT, torch.zeros(2, 6, 4))


def test_low_precision_input_runs_in_float32():
    A, U, _ = gapped(16, 12, 3)
    P, R = power_iteration_step(A.bfloat16(), torch.randn(12, 3).bfloat16())
    assert P.dtype == R.dtype == torch.bfloat16
    torch.testing.assert_close((P.float().T @ P.float()), torch.eye(3), atol=2e-2, rtol=0)


@pytest.mark.parametrize("call, message", [
    (lambda: range_finder(torch.zeros(4, 3), 4), "rank must be an int in"),
    (lambda: range_finder(torch.zeros(4, 3), 2, iters=-1), "iters must be"),
    (lambda: power_iteration_step(torch.zeros(4, 3), torch.zeros(4, 2)), "Q.shape"),
    (lambda: orthonormal_basis(torch.zeros(3)), "ndim >= 2"),
    (lambda: column_normalize([[1.0]]), "torch.Tensor"),
])
def test_bad_inputs(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
