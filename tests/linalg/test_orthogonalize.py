"""Tests for optimlab.linalg: Newton–Schulz schedules, kernels, SVD oracle, diagnostics."""

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
from optimlab.linalg.schedules import _POLAR_EXPRESS_RAW, norm_safety

JORDAN = (3.4445, -4.7750, 2.0315)
BF16 = torch.bfloat16
F32 = torch.float32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The matrices here are tiny; on a shared 2-core box, OpenMP threads spinning against other
    # processes made single tests take seconds.  One intra-op thread for this module only.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def compose(coeffs, x: np.ndarray) -> np.ndarray:
    """Exact (float64) scalar action of a schedule on singular values."""
    for a, b, c in coeffs:
        x2 = x * x
        x = x * (a + x2 * (b + c * x2))
    return x


def svals(X: torch.Tensor) -> np.ndarray:
    return torch.linalg.svdvals(X.double()).numpy()


# ----------------------------------------------------------------------------- schedules


def test_schedule_names():
    assert SCHEDULES == ("jordan", "polar_express", "you")


def test_jordan_coefficients():
    assert ns_coefficients("jordan", 5) == [JORDAN] * 5
    assert ns_coefficients("jordan", 0) == []


def test_polar_express_table_is_algorithm_1():
    # Algorithm 1 of arXiv:2505.16932: safety factor 1.01 on all but the last polynomial,
    # then the last one (15/8, -10/8, 3/8) repeated.
    co = ns_coefficients("polar_express", 11)
    assert len(co) == 11
    for (a, b, c), (ra, rb, rc) in zip(co[:7], _POLAR_EXPRESS_RAW[:7]):
        assert (a, b, c) == pytest.approx((ra / 1.01, rb / 1.01**3, rc / 1.01**5), rel=1e-15)
    assert co[7:] == [(1.875, -1.25, 0.375)] * 4
    assert co[0] == pytest.approx((8.28721201814563 / 1.01, -23.595886519098837 / 1.01**3,
                                   17.300387312530933 / 1.01**5), rel=1e-15)
    assert norm_safety("polar_express") == 1.01 and norm_safety("jordan") is None


def _minimax_odd_quintic(lo: float, hi: float):
    """Our own equioscillation solver: best uniform approximation of 1 on [lo, hi] by
    a x + b x^3 + c x^5 (Sec. 4.2 / Alg. 3 of arXiv:2505.16932, re-implemented)."""
    if lo / hi >= 1 - 5e-6:  # the minimax quintic has become the Newton–Schulz (Pade) quintic
        return 15 / 8 / hi, -10 / 8 / hi**3, 3 / 8 / hi**5
    inner = [lo + (hi - lo) / 4, lo + 3 * (hi - lo) / 4]
    err = None
    for _ in range(200):
        pts = [lo, *inner, hi]
        M = np.array([[x, x**3, x**5, (-1) ** k] for k, x in enumerate(pts)])
        a, b, c, e = np.linalg.solve(M, np.ones(4))  # p = 1 - e, 1 + e, 1 - e, 1 + e
        inner = list(np.sqrt(np.sort(np.roots([5 * c, 3 * b, a]).real)))  # roots of p'
        if err is not None and abs(e - err) < 1e-15:
            break
        err = e
    return a, b, c


def _polar_express_design(ell=1e-3, steps=8, cushion=0.02407327424182761):
    lo, hi, out = ell, 1.0, []
    for _ in range(steps):
        a, b, c = _minimax_odd_quintic(max(lo, cushion * hi), hi)
        k = 2 / (compose([(a, b, c)], np.array(lo)) + compose([(a, b, c)], np.array(hi)))
        a, b, c = a * k, b * k, c * k  # re-centre: p(lo) - 1 = 1 - p(hi)
        out.append((a, b, c))
        lo = float(compose([(a, b, c)], np.array(lo)))
        hi = 2 - lo
    return out


def test_polar_express_coefficients_rederived_from_the_paper_design():
    # Independent re-derivation of the published raw list (ell = 1e-3, u = 1, cushion as in
    # the paper's Appendix G), and of the claim that later steps are the (15/8, -10/8, 3/8) quintic.
    design = _polar_express_design(steps=12)
    for got, pub in zip(design[:8], _POLAR_EXPRESS_RAW):
        np.testing.assert_allclose(got, pub, rtol=1e-7)
    for got in design[8:]:
        np.testing.assert_allclose(got, (1.875, -1.25, 0.375), rtol=1e-7)


def test_you_coefficients():
    co = ns_coefficients("you", 8)
    assert co[0] == (3955 / 1024, -8306 / 1024, 5008 / 1024)
    assert co[5] == (2172 / 1024, -1833 / 1024, 682 / 1024)
    assert co[6] == co[7] == co[5]
    assert ns_coefficients("you", 3) == co[:3]


def test_user_schedule_repeats_last_entry():
    user = [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    assert ns_coefficients(user, 4) == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0), (4.0, 5.0, 6.0), (4.0, 5.0, 6.0)]
    assert ns_coefficients(user, 1) == [(1.0, 2.0, 3.0)]
    assert ns_coefficients(JORDAN, 2) == [JORDAN, JORDAN]  # a bare triple, like torch's Muon


@pytest.mark.parametrize(
    "schedule, steps, needle",
    [
        ("foo", 5, "unknown schedule 'foo'; choose from ['jordan', 'polar_express', 'you']"),
        ("jordan", -1, "-1"),
        ("jordan", 2.5, "2.5"),
        ("jordan", True, "True"),
        ([], 5, "[]"),
        ([(1.0, 2.0)], 5, "(1.0, 2.0)"),
        ([(1.0, 2.0, float("nan"))], 5, "nan"),
        (42, 5, "42"),
    ],
)
def test_ns_coefficients_bad_input(schedule, steps, needle):
    with pytest.raises(ValueError) as e:
        ns_coefficients(schedule, steps)
    assert "ns_coefficients" in str(e.value) and needle in str(e.value)


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


# ----------------------------------------------------------------------------- spectral bands

M, N = 48, 80
KAPPAS = (1e1, 1e2, 1e3, 1e4)


def _jordan_band():
    # Range of Jordan's quintic p on its invariant set: p has positive critical points
    # x1 = 0.5545 (max, p = 1.2024) and x2 = 1.0501 (min, p = 0.6818); values climbing from 0
    # pass through at most p(x1) and nothing that enters [p(x2), p(x1)] leaves it (it ends in
    # the attractor [0.6818, p(0.6818) = 1.1344]).  Keller Jordan's post says "roughly
    # Uniform(0.5, 1.5)"; the polynomial's exact band is (0.6818, 1.2024).
    a, b, c = JORDAN
    x1, x2 = np.sqrt(np.sort(np.roots([5 * c, 3 * b, a]).real))
    return float(compose([JORDAN], np.array(x2))), float(compose([JORDAN], np.array(x1)))


def _design_band(schedule: str, steps: int, ell: float = 1e-3):
    # Range of the composed polynomial over the interval the schedule is designed for:
    # normalised singular values in [ell, 1] (divided by the normalisation safety factor).
    # Polar Express: ell = 1e-3, 5 steps (the paper's design) -> (0.8401, 1.1236).
    # You: no published design interval; we use the same [1e-3, 1] and its 6 steps -> (0.8663, 0.9993).
    x = np.concatenate([np.geomspace(ell, 1, 200_001), np.linspace(ell, 1, 200_001)])
    y = compose(ns_coefficients(schedule, steps), x / (norm_safety(schedule) or 1.0))
    return float(y.min()), float(y.max())


BANDS = {
    "jordan": _jordan_band(),
    "polar_express": _design_band("polar_express", 5),
    "you": _design_band("you", 6),
}
# Steps needed (exact arithmetic) until every normalised singular value of the 48 x 80 test
# matrix (s log-spaced over [1/kappa, 1], so the smallest normalised one is ~1/(kappa ||s||))
# lies in the schedule's band; recomputed in the test from the polynomials.
STEPS_NEEDED = {
    "jordan": (3, 5, 6, 8),
    "polar_express": (5, 5, 7, 10),
    "you": (6, 6, 7, 10),
}


def test_band_constants():
    np.testing.assert_allclose(BANDS["jordan"], (0.6818, 1.2024), atol=1e-4)
    np.testing.assert_allclose(BANDS["polar_express"], (0.8401, 1.1236), atol=1e-4)
    np.testing.assert_allclose(BANDS["you"], (0.8663, 0.9993), atol=1e-4)


def _prescribed(kappa: float, seed: int):
    g = gen(seed)
    s = np.geomspace(1.0, 1.0 / kappa, M)
    U = random_orthogonal(M, g)
    V = random_orthogonal(N, g)[:, :M]
    return (U * torch.from_numpy(s)) @ V.T, s


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_bands_on_prescribed_spectra(schedule):
    lo_b, hi_b = BANDS[schedule]
    for kappa, expected_steps in zip(KAPPAS, STEPS_NEEDED[schedule]):
        G, s = _prescribed(kappa, seed=int(math.log10(kappa)))
        x = s / np.linalg.norm(s) / (norm_safety(schedule) or 1.0)  # the normalised spectrum
        steps = next(t for t in range(30)
                     if lo_b <= compose(ns_coefficients(schedule, t), x).min()
                     and compose(ns_coefficients(schedule, t), x).max() <= hi_b)
        assert steps == expected_steps, (schedule, kappa)

        # fp32: output singular values are the scalar polynomial of the input ones (to 1e-4),
        # hence inside the band after `steps` steps ...
        pred = np.sort(compose(ns_coefficients(schedule, steps), x))[::-1]
        sv = svals(newton_schulz(G.float(), steps, schedule, dtype=F32))
        np.testing.assert_allclose(sv, pred, atol=1e-4)
        assert lo_b - 1e-4 <= sv.min() and sv.max() <= hi_b + 1e-4
        # ... and one step fewer is not enough (predicted miss >= 0.079 for every case here).
        sv_prev = svals(newton_schulz(G.float(), steps - 1, schedule, dtype=F32))
        assert sv_prev.min() < lo_b - 0.05 or sv_prev.max() > hi_b + 0.05

        # bf16 (default dtype): inside the band up to bf16 error.  Measured worst excursion
        # 0.0035 beyond the band edges; we allow 0.02 (~2.5 bf16 ulps at 1).
        svb = svals(newton_schulz(G.float(), steps, schedule))
        assert lo_b - 0.02 <= svb.min() and svb.max() <= hi_b + 0.02


def test_jordan_plateaus_and_polar_express_converges():
    G, s = _prescribed(1e2, seed=7)
    err_j = orthogonality_error(newton_schulz(G.float(), 12, "jordan", dtype=F32)).item()
    err_pe = orthogonality_error(newton_schulz(G.float(), 12, "polar_express", dtype=F32)).item()
    assert 0.15 < err_j < 0.33  # Jordan's quintic stops in (0.68, 1.14): never converges
    assert err_pe < 1e-3


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
