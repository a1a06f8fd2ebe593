"""Newton–Schulz coefficient schedules: the published tables, and the singular-value band each one ends in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optimlab.linalg import SCHEDULES, newton_schulz, ns_coefficients, orthogonality_error
from optimlab.linalg.schedules import _POLAR_EXPRESS_RAW, norm_safety

JORDAN = (3.4445, -4.7750, 2.0315)
BF16 = torch.bfloat16
F32 = torch.float32



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


def random_orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    return Q * torch.sign(torch.diagonal(R))


# ----------------------------------------------------------------------------- schedules


def test_schedule_names():
    assert SCHEDULES == ("jordan", "polar_express", "you", "dion", "turbo")


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


def test_dion_and_turbo_coefficients():
    # You's 5-step list (x.com/YouJiacheng/status/1905861218138804534, as listed by the Gram NS and
    # Dion repositories); Turbo-Muon drops its first entry (thib-s/flash-newton-schulz, NS_ours).
    dion = ns_coefficients("dion", 7)
    assert dion[0] == (4.0848, -6.8946, 2.9270) and dion[4] == (2.8366, -3.0525, 1.2012)
    assert dion[5] == dion[6] == dion[4]
    assert ns_coefficients("turbo", 4) == dion[1:5]
    assert norm_safety("dion") is None and norm_safety("turbo") is None


def test_user_schedule_repeats_last_entry():
    user = [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    assert ns_coefficients(user, 4) == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0), (4.0, 5.0, 6.0), (4.0, 5.0, 6.0)]
    assert ns_coefficients(user, 1) == [(1.0, 2.0, 3.0)]
    assert ns_coefficients(JORDAN, 2) == [JORDAN, JORDAN]  # a bare triple, like torch's Muon


@pytest.mark.parametrize(
    "schedule, steps, needle",
    [
        ("foo", 5, "unknown schedule 'foo'; choose from ['jordan', 'polar_express', 'you', 'dion', 'turbo']"),
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


# ----------------------------------------------------------------------------- spectral bands

M, N = 48, 80
KAPPAS = (1e1, 1e2, 1e3, 1e4)


def _attractor_band(p=JORDAN):
    # Range of a quintic p on its invariant set: p has positive critical points x1 (max) < x2 (min);
    # values climbing from 0 pass through at most p(x1) and nothing that enters [p(x2), p(x1)]
    # leaves it.  Jordan's quintic: x1 = 0.5545 (p = 1.2024), x2 = 1.0501 (p = 0.6818), so the band
    # is (0.6818, 1.2024) (it ends in the attractor [0.6818, p(0.6818) = 1.1344]); Keller Jordan's
    # post says "roughly Uniform(0.5, 1.5)".  "dion"/"turbo" repeat their last quintic
    # (2.8366, -3.0525, 1.2012) after the list: x1 = 0.6576, x2 = 1.0452, band (0.9778, 1.1450).
    a, b, c = p
    x1, x2 = np.sqrt(np.sort(np.roots([5 * c, 3 * b, a]).real))
    return float(compose([p], np.array(x2))), float(compose([p], np.array(x1)))


def _design_band(schedule: str, steps: int, ell: float = 1e-3):
    # Range of the composed polynomial over the interval the schedule is designed for:
    # normalised singular values in [ell, 1] (divided by the normalisation safety factor).
    # Polar Express: ell = 1e-3, 5 steps (the paper's design) -> (0.8401, 1.1236).
    # You: no published design interval; we use the same [1e-3, 1] and its 6 steps -> (0.8663, 0.9993).
    x = np.concatenate([np.geomspace(ell, 1, 200_001), np.linspace(ell, 1, 200_001)])
    y = compose(ns_coefficients(schedule, steps), x / (norm_safety(schedule) or 1.0))
    return float(y.min()), float(y.max())


BANDS = {
    "jordan": _attractor_band(),
    "polar_express": _design_band("polar_express", 5),
    "you": _design_band("you", 6),
    # No published band: the invariant band of the repeated last polynomial (the 5-step design
    # interval of "dion" is not published; over [1e-3, 1] it would only guarantee 0.475).
    "dion": _attractor_band(ns_coefficients("dion", 5)[-1]),
    "turbo": _attractor_band(ns_coefficients("turbo", 4)[-1]),
}
# Steps needed (exact arithmetic) until every normalised singular value of the 48 x 80 test
# matrix (s log-spaced over [1/kappa, 1], so the smallest normalised one is ~1/(kappa ||s||))
# lies in the schedule's band; recomputed in the test from the polynomials.
STEPS_NEEDED = {
    "jordan": (3, 5, 6, 8),
    "polar_express": (5, 5, 7, 10),
    "you": (6, 6, 7, 10),
    "dion": (5, 5, 7, 9),
    "turbo": (4, 5, 7, 9),
}


def test_band_constants():
    np.testing.assert_allclose(BANDS["jordan"], (0.6818, 1.2024), atol=1e-4)
    np.testing.assert_allclose(BANDS["polar_express"], (0.8401, 1.1236), atol=1e-4)
    np.testing.assert_allclose(BANDS["you"], (0.8663, 0.9993), atol=1e-4)
    np.testing.assert_allclose(BANDS["dion"], (0.9778, 1.1450), atol=1e-4)
    assert BANDS["turbo"] == BANDS["dion"]


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
