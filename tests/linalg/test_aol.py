"""AOL-preconditioned Newton–Schulz (Turbo-Muon, arXiv:2512.04632) against its literal transcription."""

from __future__ import annotations

import pytest
import torch

from optimlab.linalg import aol_newton_schulz, newton_schulz, orthogonality_error, polar_svd
from optimlab.linalg.schedules import TURBO
from optimlab.reference.spectral_maps import aol_newton_schulz_reference

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def relfro(X: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    P = polar_svd(G.double())
    return (X.double() - P).norm(dim=(-2, -1)) / P.norm(dim=(-2, -1))


@pytest.mark.parametrize("shape", [(12, 30), (30, 12), (16, 16)])
@pytest.mark.parametrize("steps", [0, 1, 4])
def test_equals_literal_transcription(shape, steps):
    G = torch.randn(shape, dtype=F64, generator=gen(0))
    ours = aol_newton_schulz(G, steps, dtype=F64)
    ref = aol_newton_schulz_reference(G, TURBO[:steps])
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    # a deliberately wrong variant: the same steps from the Frobenius normalisation instead of AOL
    if steps:
        assert (newton_schulz(G, steps, "turbo", dtype=F64) - ref).abs().max() > 1e-3


def test_aol_rescaling_has_spectral_norm_at_most_one():
    # Prach & Lampert (arXiv:2208.03160), Thm. 1; also for heavy-tailed and low-rank inputs.
    g = gen(1)
    for G in (torch.randn(5, 40, 90, generator=g, dtype=F64),
              torch.randn(5, 90, 40, generator=g, dtype=F64) ** 3,
              torch.randn(5, 40, 3, generator=g, dtype=F64) @ torch.randn(5, 3, 60, generator=g, dtype=F64)):
        s = torch.linalg.matrix_norm(aol_newton_schulz(G, 0, dtype=F64), ord=2)
        assert s.max().item() <= 1 + 1e-12
        assert s.min().item() > 0.3  # and it does not shrink the matrix much either


@pytest.mark.parametrize("shape", [(48, 160), (160, 48), (96, 96)])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_four_aol_steps_beat_five_plain_ones(shape, dtype):
    """The paper's claim, measured on Gaussian matrices (4 per shape). What holds here:

    * relative Frobenius distance to polar(G): AOL-4 ("turbo") <= Jordan-5 (torch.optim.Muon's), and
      <= 4 steps of the same "dion" family from ``G/||G||_F``, on tall, wide and square inputs;
    * spectral orthogonality error max|sigma - 1| on rectangular inputs: AOL-4 <= Jordan-5 (0.032 vs
      0.318) and, worst matrix against worst matrix, within 10 % of 5 "dion" steps from ``G/||G||_F``
      (measured: 0.032-0.034 for both).
    Not claimed: AOL-4 <= dion-5 in Frobenius distance (0.021 vs 0.019 on 48 x 160) - AOL converges to
    the polar factor of the *rescaled* matrix, see test_converges_to_polar_of_rescaled_matrix.
    Square Gaussian matrices have sigma_min ~ 1/n, so every 4-5 step method has max|sigma - 1| ~ 0.93.
    """
    G = torch.randn(4, *shape, generator=gen(2))
    aol4 = aol_newton_schulz(G, 4, dtype=dtype)
    jordan5 = newton_schulz(G, 5, dtype=dtype)
    dion4 = newton_schulz(G, 4, "dion", dtype=dtype)
    dion5 = newton_schulz(G, 5, "dion", dtype=dtype)
    assert (relfro(aol4, G) <= relfro(jordan5, G)).all()
    assert (relfro(aol4, G) <= relfro(dion4, G)).all()
    if shape[0] != shape[1]:
        e_aol = orthogonality_error(aol4)
        assert (e_aol <= orthogonality_error(jordan5)).all() and e_aol.max() < 0.04
        assert e_aol.max() <= 1.1 * orthogonality_error(dion5).max()


def test_converges_to_polar_of_rescaled_matrix():
    # AOL is a diagonal change of the input, not of its spectrum: the iteration converges to
    # polar(diag(s) X), which differs from polar(X).  Measured here: 0.3-1.1 % relative Frobenius.
    G = torch.randn(3, 40, 100, dtype=F64, generator=gen(3))
    X = aol_newton_schulz(G, 0, dtype=F64)
    converged = aol_newton_schulz(G, 30, "polar_express", dtype=F64)
    torch.testing.assert_close(converged, polar_svd(X), atol=1e-8, rtol=0)
    bias = relfro(polar_svd(X), G)
    assert 1e-3 < bias.min() and bias.max() < 2e-2


def test_decaying_spectrum_limitation():
    """What does not hold: on gradient-like inputs (random singular vectors, sigma_i = 1/(1+i)) the
    fixed point polar(diag(s) X) is ~14 % (relative Frobenius) away from polar(X), so AOL-4 is ~10x
    farther from polar(X) than 5 "dion" steps (measured 0.15 vs 0.016 at 64 x 64 and 48 x 160; at
    512 x 512 0.48 vs 0.14, see BENCHMARKS.md)."""
    g = gen(7)
    for m, n in [(64, 64), (48, 160)]:
        k = min(m, n)
        U, _ = torch.linalg.qr(torch.randn(2, m, k, dtype=F64, generator=g))
        V, _ = torch.linalg.qr(torch.randn(2, n, k, dtype=F64, generator=g))
        G = (U / torch.arange(1, k + 1, dtype=F64)) @ V.mT
        bias = relfro(polar_svd(aol_newton_schulz(G, 0, dtype=F64)), G)
        assert (bias > 0.1).all()
        assert (relfro(aol_newton_schulz(G, 4, dtype=F64), G) > 5 * relfro(newton_schulz(G, 5, "dion", dtype=F64), G)).all()


def test_permutation_equivariant_but_not_rotation_equivariant():
    # diag(s) commutes with signed permutations, not with rotations: an honest property of AOL.
    g = gen(4)
    G = torch.randn(20, 50, dtype=F64, generator=g)
    P = torch.eye(20, dtype=F64)[torch.randperm(20, generator=g)] * torch.sign(torch.randn(20, 1, dtype=F64, generator=g))
    Q = torch.eye(50, dtype=F64)[torch.randperm(50, generator=g)]
    f = lambda A: aol_newton_schulz(A, 4, dtype=F64)  # noqa: E731
    torch.testing.assert_close(f(P @ G @ Q), P @ f(G) @ Q, atol=1e-12, rtol=0)
    R, _ = torch.linalg.qr(torch.randn(20, 20, dtype=F64, generator=g))
    assert (f(R @ G) - R @ f(G)).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_zero_rank_deficient_batched_and_bf16(dtype):
    assert torch.equal(aol_newton_schulz(torch.zeros(2, 8, 12), dtype=dtype), torch.zeros(2, 8, 12, dtype=dtype))
    g = gen(5)
    G = torch.randn(30, 3, generator=g) @ torch.randn(3, 50, generator=g)
    assert torch.isfinite(aol_newton_schulz(G, dtype=dtype)).all()
    S = torch.randn(3, 2, 24, 40, generator=g)
    out = aol_newton_schulz(S, dtype=dtype)
    per = torch.stack([aol_newton_schulz(x, dtype=dtype) for x in S.reshape(-1, 24, 40)]).reshape(S.shape)
    # bf16 on a CPU with native bf16 GEMM (avx512_bf16/AMX) blocks bmm and mm differently: one bf16 ulp
    # (2^-8 near 1) separates the batched and per-matrix results there; without it they are equal
    torch.testing.assert_close(out, per, atol=2.0 ** -7 if dtype == BF16 else 1e-6, rtol=0)
    exact = aol_newton_schulz(S.double(), dtype=F64)
    tol = 0.02 if dtype == BF16 else 1e-5  # bf16: a few ulps of the largest entry after 4 steps
    assert (out.double() - exact).abs().max() < tol * exact.abs().max()


def test_input_untouched_differentiable_and_compiles():
    G = torch.randn(16, 24, generator=gen(6), requires_grad=True)
    before = G.detach().clone()
    out = aol_newton_schulz(G, dtype=F32)
    out.sum().backward()
    assert torch.equal(G.detach(), before) and torch.isfinite(G.grad).all()
    assert torch.equal(out.detach(), aol_newton_schulz(G.detach(), dtype=F32))
    f = torch.compile(aol_newton_schulz, backend="eager", fullgraph=True)
    torch.testing.assert_close(f(G.detach()), aol_newton_schulz(G.detach()), atol=0, rtol=0)
