"""Properties of the Muon variants and CLion that their papers' rules imply (parity with the transcribed rules
is in tests/reference/test_muon_variants.py)."""

import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.linalg import orthogonality_error, polar_svd

PAPERS = {"normuon": "arXiv:2510.05491", "adamuon": "arXiv:2507.11005", "adago": "arXiv:2509.02981",
          "muoneq": "arXiv:2603.28254", "mimuon": "arXiv:2605.19619", "trust_region": "arXiv:2503.12645",
          "clion": "arXiv:2604.14587"}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_describe_names_the_paper_and_every_default(name):
    d = optimlab.describe(name)
    assert PAPERS[name] in d.paper and PAPERS[name] in str(d)
    assert d.rule and d.summary
    main = [info for info in d.roles.values() if info["main"]]
    assert main and all(doc for info in main for _, doc, _ in info["hparams"].values())


def one_step(name, G, steps=1, **hp):
    """The steps taken from W = 0 with lr 1 and no decay, each on gradient ``G`` (a tensor or a callable)."""
    W = nn.Parameter(torch.zeros_like(G if torch.is_tensor(G) else G(0)))
    opt = optimlab.create([W], name, lr=1.0, weight_decay=0.0, **hp)
    out = []
    for t in range(steps):
        before = W.detach().clone()
        W.grad = (G if torch.is_tensor(G) else G(t)).clone()
        opt.step()
        out.append(before - W.detach())
    return out


def row_scaled(shape, seed=0, lo=-2.0, hi=1.0, cols=False):
    """A Gaussian matrix whose rows (or columns) have scales spread over 10^lo ... 10^hi."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*shape, generator=g, dtype=torch.float64)
    if cols:
        return X * (10 ** torch.linspace(lo, hi, shape[1], dtype=torch.float64))[None, :]
    return X * (10 ** torch.linspace(lo, hi, shape[0], dtype=torch.float64))[:, None]


def row_rms(D):
    return D.reshape(D.shape[0], -1).pow(2).mean(1).sqrt()


# -- NorMuon ------------------------------------------------------------------------------------------------
def test_normuon_rows_have_equal_rms_where_the_rule_implies_it():
    """Step 1 (any β2: v = (1−β2)·mean_cols(O²)) and every step with β2 = 0 give each row the same RMS, 0.2·lr.
    A tall matrix, so that Muon's own rows are far from equal (a wide polar factor has orthonormal rows)."""
    G = row_scaled((12, 6))
    muon_step = one_step("muon", G, momentum=0.0, nesterov=False, ortho_backend="svd", adjust_lr_fn="none")[0]
    assert row_rms(muon_step).max() / row_rms(muon_step).min() > 1.5
    # eps 1e-12: with the default 1e-8 a row of tiny RMS deviates by eps/sqrt(v) ~ 3e-6 relative
    first = one_step("normuon", G, momentum=0.0, ortho_backend="svd", eps=1e-12)[0]
    torch.testing.assert_close(row_rms(first), torch.full((12,), 0.2, dtype=torch.float64), rtol=1e-9, atol=0)
    gen = torch.Generator().manual_seed(1)
    steps = one_step("normuon", lambda t: row_scaled((12, 6), seed=t) + torch.randn(12, 6, generator=gen,
                                                                                     dtype=torch.float64),
                     steps=5, momentum=0.9, beta2=0.0, ortho_backend="svd", eps=1e-12)
    for D in steps:
        torch.testing.assert_close(row_rms(D), torch.full((12,), 0.2, dtype=torch.float64), rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", ["normuon", "adamuon"])
def test_rms_aligned_variants_step_with_rms_0_2_lr(name):
    gen = torch.Generator().manual_seed(2)
    steps = one_step(name, lambda t: torch.randn(8, 5, 3, generator=gen, dtype=torch.float64), steps=4)
    for D in steps:
        assert math.isclose(D.pow(2).mean().sqrt().item(), 0.2, rel_tol=1e-9)


# -- MuonEq ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 32), (24, 24)])
@pytest.mark.parametrize("mode", ["r", "c", "rc"])
def test_muoneq_equilibration_lowers_newton_schulz_error_on_mismatched_scales(shape, mode):
    """Five Jordan Newton–Schulz steps leave an ill-conditioned input far from orthogonal (small singular values
    are not yet lifted); equilibrating the mismatched marginal first brings the result to the iteration's own
    floor (~0.32 for these coefficients, which oscillate around 1 by design). Mismatched scales hurt along the
    short side (the Gram matrix NS works with): rows of a wide matrix, columns of a tall one."""
    if mode == "c":
        shape = shape[::-1]
    G = row_scaled(shape, cols=(mode == "c")).float()
    if mode == "rc":
        G = G * (10 ** torch.linspace(-1, 1, shape[1]))[None, :]
    common = dict(momentum=0.0, nesterov=False, adjust_lr_fn="none", ns_dtype="float32", ns_steps=5,
                  ns_coefficients="jordan")
    plain = one_step("muon", G, **common)[0]
    eq = one_step("muoneq", G, equilibrate=mode, **common)[0]
    err_plain, err_eq = orthogonality_error(plain).item(), orthogonality_error(eq).item()
    assert err_plain > 0.6 and err_eq < 0.35, (err_plain, err_eq)
    # the same against the exact polar factor of what each one orthogonalized
    dist_plain = torch.linalg.matrix_norm((plain - polar_svd(G)).double(), ord=2).item()
    assert dist_plain > 0.6
    sq = G.square()
    Gt = G
    if "r" in mode:
        Gt = Gt / (sq.sum(1, keepdim=True) + 1e-8).sqrt()
    if "c" in mode:
        Gt = Gt / (sq.sum(0, keepdim=True) + 1e-8).sqrt()
    assert torch.linalg.matrix_norm((eq - polar_svd(Gt)).double(), ord=2).item() < 0.35


def test_muoneq_is_muon_when_rows_already_balanced_and_scale_free():
    """Row equilibration of a matrix with equal row norms is a global rescale, which NS ignores."""
    gen = torch.Generator().manual_seed(6)
    G = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))[0][:8] * 3.0  # rows of norm 3
    common = dict(momentum=0.0, nesterov=False, ortho_backend="svd", eq_eps=0.0)
    torch.testing.assert_close(one_step("muoneq", G, **common)[0],
                               one_step("muon", G, momentum=0.0, nesterov=False, ortho_backend="svd")[0])


# -- the trust-region family -----------------------------------------------------------------------------------
def test_trust_region_steps_to_the_boundary_of_the_chosen_ball():
    G = row_scaled((6, 9))
    hp = dict(momentum=0.0, ortho_backend="svd")
    (fro,) = one_step("trust_region", G, norm="frobenius", **hp)
    (inf,) = one_step("trust_region", G, norm="linf", **hp)
    (spec,) = one_step("trust_region", G, norm="spectral", **hp)
    assert math.isclose(fro.norm().item(), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(fro, G / G.norm())
    torch.testing.assert_close(inf, torch.sign(G))
    torch.testing.assert_close(torch.linalg.svdvals(spec), torch.ones(6, dtype=torch.float64))
    # each is the maximiser of <G, d> on its unit ball: it beats the other two directions once rescaled
    for d, dual in ((fro, G.norm()), (inf, G.abs().sum()), (spec, torch.linalg.svdvals(G).sum())):
        torch.testing.assert_close((G * d).sum(), dual)


# -- AdaGO ---------------------------------------------------------------------------------------------------------
def test_adago_step_size_is_adagrad_norm_then_floored():
    G = row_scaled((5, 4))
    G = G / G.norm() * 2.0  # ‖G‖_F = 2 < γ
    steps = one_step("adago", G, steps=6, momentum=0.0, ortho_backend="svd", v0=1e-6, min_step=0.0)
    for t, D in enumerate(steps, start=1):
        alpha = 2.0 / math.sqrt(1e-12 + 4.0 * t)  # lr·min(‖G‖, γ)/v_t with v_t² = v0² + t·‖G‖²
        torch.testing.assert_close(torch.linalg.svdvals(D), torch.full((4,), alpha, dtype=torch.float64))
    floored = one_step("adago", G, steps=6, momentum=0.0, ortho_backend="svd", min_step=0.5)
    sizes = [round(torch.linalg.svdvals(D).max().item(), 9) for D in floored]
    assert sizes == [1.0, 0.707106781, 0.577350269, 0.5, 0.5, 0.5]  # 1/sqrt(t), then the floor
    clipped = one_step("adago", G, steps=2, momentum=0.0, ortho_backend="svd", gamma=0.5, min_step=0.0)
    assert math.isclose(torch.linalg.svdvals(clipped[1]).max().item(), 0.5 / math.sqrt(2 * 0.25), rel_tol=1e-9)


# -- MiMuon ------------------------------------------------------------------------------------------------------
def test_mimuon_is_muon_above_the_gap_and_momentum_sgd_below():
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(6, 4, generator=gen, dtype=torch.float64) for _ in range(4)]
    hp = dict(momentum=0.9, ortho_backend="svd")
    always = one_step("mimuon", lambda t: grads[t], steps=4, gap_threshold=0.0, **hp)
    spectral = one_step("trust_region", lambda t: grads[t], steps=4, norm="spectral", **hp)
    never = one_step("mimuon", lambda t: grads[t], steps=4, gap_threshold=1e9, **hp)
    M = torch.zeros(6, 4, dtype=torch.float64)
    for t in range(4):
        M = 0.9 * M + 0.1 * grads[t]
        torch.testing.assert_close(always[t], spectral[t])
        torch.testing.assert_close(never[t], M)


def test_mimuon_gate_treats_repeated_singular_values_as_no_gap():
    """A momentum with two equal singular values has gap 0: MiMuon steps along it, not along U Vᵀ."""
    gen = torch.Generator().manual_seed(5)
    U = torch.linalg.qr(torch.randn(5, 3, generator=gen, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
    G = U @ torch.diag(torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64)) @ V.T
    (D,) = one_step("mimuon", G, momentum=0.0, gap_threshold=1e-6, ortho_backend="svd")
    torch.testing.assert_close(D, G)
    (D,) = one_step("mimuon", G + 1e-3 * U[:, 2:] @ V[:, 2:].T, momentum=0.0, gap_threshold=1e-6, ortho_backend="svd")
    torch.testing.assert_close(D, U @ V.T)  # gaps 2 and 1e-3 > τ: Muon's step


# -- CLion ---------------------------------------------------------------------------------------------------------
def test_clion_is_lion_at_zero_threshold_and_momentum_sgd_above_every_entry():
    gen = torch.Generator().manual_seed(4)
    grads = [torch.randn(7, 3, generator=gen) for _ in range(5)]
    lion = one_step("lion", lambda t: grads[t], steps=5)
    clion0 = one_step("clion", lambda t: grads[t], steps=5, sign_threshold=0.0)
    ident = one_step("clion", lambda t: grads[t], steps=5, sign_threshold=1e9)
    m = torch.zeros(7, 3)
    for t in range(5):
        assert torch.equal(lion[t], clion0[t])
        torch.testing.assert_close(ident[t], 0.1 * grads[t] + 0.9 * m)  # c = β1 m + (1 − β1) g
        m = 0.99 * m + 0.01 * grads[t]


def test_clion_gate_is_per_tensor():
    big, small = torch.full((3, 3), 1.0), torch.full((4,), 1e-12)
    a, b = nn.Parameter(torch.zeros(3, 3)), nn.Parameter(torch.zeros(4))
    opt = optimlab.create([a, b], "clion", lr=1.0, sign_threshold=1e-8)
    a.grad, b.grad = big, small
    opt.step()
    assert torch.equal(-a.detach(), torch.ones(3, 3))  # sign branch
    torch.testing.assert_close(-b.detach(), 0.1 * small)  # identity branch: c = 0.1 g


# -- validation ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, hp, message", [
    ("muoneq", {"equilibrate": "x"}, r"muoneq: equilibrate must be one of 'r', 'c', 'rc', got 'x'"),
    ("trust_region", {"norm": "l3"}, r"trust_region: norm must be one of 'spectral', 'frobenius', 'linf'"),
    ("mimuon", {"gap_threshold": -1.0}, r"mimuon: gap_threshold must be in \[0, inf\), got -1.0"),
    ("normuon", {"beta2": 1.0}, r"normuon: beta2 must be in \[0, 1\), got 1.0"),
    ("adago", {"gamma": 0.0}, r"adago: gamma must be in \(0, inf\), got 0.0"),
    ("clion", {"sign_threshold": float("nan")}, r"clion: sign_threshold must be in \[0, inf\), got nan"),
])
def test_bad_hyperparameters_are_named(name, hp, message):
    with pytest.raises(ValueError, match=message):
        optimlab.create([nn.Parameter(torch.zeros(3, 3))], name, **hp)
