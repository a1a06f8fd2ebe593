"""The claims suite: registry, fast protocols of every implemented claim, pending claims, errors.

The tests check the structure of the evidence (verdict vocabulary, finite per-seed numbers, a
PNG figure) and the sanity of deterministic numbers; they do not require a claim to hold.
"""

from __future__ import annotations

import math

import pytest

import optimlab
from optimlab.lab.claims import CLAIMS, VERDICTS, Claim, Evidence, Outcome, get_claim, list_claims, run_claim

IMPLEMENTED = ["gd-edge-of-stability", "adam-edge-of-stability", "zo-stability-boundary", "zo-frank-wolfe-rate",
               "cbo-rastrigin", "zo-eos-mlp", "langevin-averaging-sample-complexity",
               "adam-fails-amsgrad-converges", "muon-associative-memory", "incremental-rank-learning",
               "grokking-modular-arithmetic", "sgd-trace-bound", "natural-gradient-scaling-exponent",
               "kaon-matches-muon", "muoneq-r-vs-muon", "turbo-muon-4-vs-5-ns", "dog-vs-tuned-sgd",
               "hessian-fitting-lie-linear", "psgd-vs-tuned-adamw", "asgo-vs-tuned-adamw",
               "mfac-exact-linear-cost", "scaledgd-log-kappa", "bias-correction-coupling",
               "egn-exact-linear-rate", "gn-smoothness-linear-rate", "tngd-equals-ngd", "sfn-escapes-saddle",
               "dct-vs-svd-projection", "snsm-memory", "osd-between-adamw-and-galore",
               "bloop-constrained-solution", "upgrad-nonconflict", "constrained-rich-parametrization",
               "ift-hypergradient-cost", "f2sa-hypercleaning", "truncated-backprop-half", "stability-gap",
               # issue 15 (registration order)
               "muon-assoc-multistep", "muoneq-ns-error-vs-conditioning", "freon-quasinorm-best",
               "scaling-alpha-shift-vs-s", "deep-linear-saddle-to-saddle", "curses-of-symmetry-rates",
               "tiny-subspace-k-classes", "outlier-eigenspace-alignment", "l1-penalty-paradox",
               "sgd-stable-minima-diagonal-nets", "wsd-decay-drop", "sqrt-scaling-rule",
               "pinn-conditioning-tracks-speed", "rmt-batch-hessian-lr-scaling", "adadagrad-rate",
               "adago-beats-muon-adamw", "auon-matches-muon", "root-beats-muon", "normuon-adamuon-beat-muon-adamw",
               "pion-matches-adamw", "mimuon-clion-generalization-gap", "sf-normuon-horizons",
               "dion-advantage-grows-with-size",
               # issue 15, tasks and diagnostics (helper wp5b)
               "ntk-orthogonal-depth", "groups-grokking", "tubal-small-init", "curl-threshold",
               "drift-modified-flow",
               # helper nharpg (issue 12: N-HARPG, cross-fitting)
               "harpg-transport-error", "cross-fit-adamw-digits", "bayesian-filtering-newton-momentum",
               # issue 15, helper wp5a
               "model-based-moreau-rate", "subgm-robust-recovery", "relu-convex-gold-standard",
               # helper "proxies": issue 12's proxy comparisons, issue 15's symmetry and SF-NorMuon leftovers
               "shampoo-vs-tuned-adamw-muon", "soap-vs-tuned-adamw-muon", "psgd-kron-vs-tuned-adamw-muon",
               "asgo-vs-tuned-adamw-muon",
               # helper "charlm": the char_lm part of issue 12's proxy comparisons
               "shampoo-vs-tuned-adamw-muon-charlm", "soap-vs-tuned-adamw-muon-charlm",
               "psgd-kron-vs-tuned-adamw-muon-charlm", "asgo-vs-tuned-adamw-muon-charlm",
               "symmetry-stack-moe-load-balance", "sf-normuon-wd-at-fast-iterate",
               # helper "lifted": issue 15's lifted matrix sensing
               "lifted-spurious-strict-saddle",
               # helper "polystep" (issue 13)
               "polystep-nondiff"]
PENDING: list[str] = ["polynomial-preconditioning-krylov", "accelerated-inexact-second-order",
                      "bo-rep-hypercleaning", "mbbo-parallel-speedup", "lv-hba-constrained-blo", "sl-bamm-kkt",
                      "moreau-blo-stationarity", "stableun-relearning", "uno-unlearning-speed", "rogo-vs-gpm",
                      "proxy-prox-point-calls", "zo-spider-goldstein"]
# the closure-aware engine's claims: their fast protocols are run in test_claims_wp1.py
WP1 = ["ghosts-safe-radius", "ghosts-controller-lr-spike", "ghosts-temperature-spread", "l-dog-vs-tuned",
       "udog-convex", "polyak-momentum-insensitive", "sania-scale-invariance", "aegd-energy-stability",
       "ngd-generalized-smooth-rate", "rmsprop-generalized-smooth", "fd-gr-rich-regime", "asgd-subspace-bias",
       "move-on-muon-dissipation"]
# fast protocols over 20 s on 2 idle cores (tuned comparisons of several optimizers): run with -m slow
SLOW = {"freon-quasinorm-best", "rmt-batch-hessian-lr-scaling", "wsd-decay-drop", "adago-beats-muon-adamw", "auon-matches-muon", "root-beats-muon", "normuon-adamuon-beat-muon-adamw",
        "pion-matches-adamw", "mimuon-clion-generalization-gap", "sf-normuon-horizons",
        "dion-advantage-grows-with-size",
        "osd-between-adamw-and-galore", "subgm-robust-recovery"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("claims")


_CACHE: dict[str, Evidence] = {}


def fast_evidence(claim_id: str, out_dir) -> Evidence:
    if claim_id not in _CACHE:
        _CACHE[claim_id] = run_claim(claim_id, fast=True, out_dir=out_dir)
    return _CACHE[claim_id]


def test_registry_lists_every_claim():
    ids = [c.id for c in list_claims()]
    assert sorted(ids) == sorted(IMPLEMENTED + PENDING + WP1)
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in IMPLEMENTED] == IMPLEMENTED  # listing order: registration order
    for claim in list_claims():
        assert claim.paper and claim.statement and claim.rule and claim.margin and claim.protocol
        assert len(claim.fast_seeds) >= 2 and len(claim.full_seeds) >= 3
        assert (claim.experiment is None) == (claim.id in PENDING)


@pytest.mark.parametrize("claim_id", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                      for c in IMPLEMENTED])
def test_fast_protocol_gives_a_verdict_with_finite_evidence_and_a_png(claim_id, out_dir):
    ev = fast_evidence(claim_id, out_dir)
    assert ev.claim_id == claim_id and ev.fast
    assert ev.verdict in {"holds", "does not hold", "inconclusive"}
    assert len(ev.seeds) >= 2 and sorted(ev.measurements) == sorted(ev.seeds) == sorted(ev.passed)
    assert ev.margin and ev.explanation and not ev.missing
    for seed, values in ev.measurements.items():
        assert values, f"seed {seed} has no measurements"
        for name, v in values.items():
            assert isinstance(v, float), (name, v)
            # NaN is allowed only where the regime was not reached, which the verdict must say
            assert math.isfinite(v) or ev.verdict == "inconclusive", (seed, name, v)
    # the verdict follows the per-seed passes unless the experiment overrode it with "inconclusive"
    if ev.verdict == "holds":
        assert all(ev.passed.values())
    if ev.verdict == "does not hold":
        assert not any(ev.passed.values())
    with open(ev.figure_path, "rb") as fh:
        assert fh.read(8) == PNG
    assert ev.figure_path.endswith(f"{claim_id}-fast.png")
    assert claim_id in ev.summary() and ev.as_dict()["verdict"] == ev.verdict


def test_amsgrad_numbers_are_projected_and_regret_is_consistent(out_dir):
    ev = fast_evidence("adam-fails-amsgrad-converges", out_dir)
    for values in ev.measurements.values():
        for key in ("x1", "adam_final_x", "amsgrad_final_x"):
            assert -1.0 <= values[key] <= 1.0
        # regret against x* = −1 is nonnegative on average once the drift has played out
        assert values["adam_avg_regret"] > values["amsgrad_avg_regret"] - 1e-9


def test_associative_memory_counts_are_integers_in_range(out_dir):
    ev = fast_evidence("muon-associative-memory", out_dir)
    n = 1024
    for values in ev.measurements.values():
        for key, v in values.items():
            if "stored" in key:
                assert v == int(v) and 0 <= v <= n
        assert values["muon_stored@B=4096"] > 0 and values["sgd_stored@B=4096"] > 0


def test_zo_boundary_is_below_gd_and_trace_bound(out_dir):
    ev = fast_evidence("zo-stability-boundary", out_dir)
    for values in ev.measurements.values():
        # necessary condition η < 2/tr(H), and far below GD's 2/λ_max = 2
        assert 0 < values["critical_lr"] < values["trace_bound_2/trH"] < 2.0
        assert values["ms_rate@0.8"] < 1.0 < values["ms_rate@1.25"]


def test_eos_ratios_are_positive(out_dir):
    for claim_id in ("gd-edge-of-stability", "adam-edge-of-stability"):
        ev = fast_evidence(claim_id, out_dir)
        for values in ev.measurements.values():
            assert all(v > 0 for v in values.values())


def test_incremental_times_are_steps(out_dir):
    ev = fast_evidence("incremental-rank-learning", out_dir)
    for values in ev.measurements.values():
        times = [values[f"t_{i}"] for i in (1, 2, 3)]
        assert all(t >= 0 and t == int(t) for t in times if math.isfinite(t))


@pytest.mark.parametrize("claim_id", PENDING)
def test_pending_claims_say_what_is_missing(claim_id, tmp_path):
    ev = run_claim(claim_id, fast=True, out_dir=tmp_path)
    assert ev.verdict == "pending"
    assert ev.missing and all(ev.missing)
    assert "needs" in ev.explanation
    assert ev.figure_path is None and not ev.measurements
    assert not list(tmp_path.iterdir())  # nothing was run, nothing was written
    claim = get_claim(claim_id)
    have = set(optimlab.available())
    for name in claim.optimizers:
        if name not in have:
            assert any(repr(name) in m for m in ev.missing)


def test_missing_optimizer_makes_a_claim_pending_without_running_it(tmp_path):
    def boom(fast, seeds):
        raise AssertionError("the experiment must not run when an optimizer is missing")

    claim = Claim(id="test-only", paper="p", arxiv="", statement="s", optimizers=("sgd", "no_such_optimizer"),
                  protocol="p", rule="r", margin="m", experiment=boom)
    ev = claim.run(fast=True, out_dir=tmp_path)
    assert ev.verdict == "pending"
    assert ev.missing == ["optimizer 'no_such_optimizer' (not in optimlab.available())"]
    assert "test-only" not in CLAIMS


def test_verdict_follows_seed_passes(tmp_path):
    def make(passes, verdict=None):
        def exp(fast, seeds):
            return Outcome({s: {"x": 1.0} for s in seeds}, dict(zip(seeds, passes)), "e", None, {}, verdict)
        return Claim(id="t", paper="p", arxiv="", statement="s", optimizers=(), protocol="p", rule="r",
                     margin="m", experiment=exp)

    assert make([True, True]).run(True, out_dir=tmp_path).verdict == "holds"
    assert make([False, False]).run(True, out_dir=tmp_path).verdict == "does not hold"
    assert make([True, False]).run(True, out_dir=tmp_path).verdict == "inconclusive"
    assert make([True, True], "inconclusive").run(True, out_dir=tmp_path).verdict == "inconclusive"
    assert set(VERDICTS) == {"holds", "does not hold", "inconclusive", "pending"}


def test_unknown_claim_id_names_it_and_suggests_close_ids():
    with pytest.raises(ValueError, match=r"unknown claim 'gd-edge-of-stabilty'.*did you mean 'gd-edge-of-stability'"):
        run_claim("gd-edge-of-stabilty")
    with pytest.raises(ValueError, match="unknown claim 'zzz'"):
        get_claim("zzz")


def test_a_verdict_needs_two_seeds(tmp_path):
    with pytest.raises(ValueError, match="at least 2 seeds"):
        run_claim("adam-fails-amsgrad-converges", fast=True, seeds=[0], out_dir=tmp_path)


def test_sgd_trace_bound_numbers(out_dir):
    ev = fast_evidence("sgd-trace-bound", out_dir)
    for values in ev.measurements.values():
        assert values["init_trace"] > 0
        for key, v in values.items():
            if key.startswith("gd_lmax") and math.isfinite(v):
                assert v < 1.0  # GD converged only where λ_max < 2/η: the classical stability condition
        assert 0 <= values["sgd_converged_runs"] <= 3


def test_natural_gradient_exponents_are_sane(out_dir):
    from optimlab.lab.claims.natural_gradient import _fit

    alpha, se = _fit([16, 32, 64, 128], [3.0 * n ** -0.4 for n in (16, 32, 64, 128)])
    assert abs(alpha - 0.4) < 1e-12 and se < 1e-12  # an exact power law is fitted exactly
    ev = fast_evidence("natural-gradient-scaling-exponent", out_dir)
    for seed, values in ev.measurements.items():
        # the damped Newton step reaches the best risk with N features within the budget ...
        assert values["ng_excess@Nmax"] < 1e-6
        assert abs(values["alpha_ng"] - values["alpha_best_risk"]) < 1e-4
        # ... which GD, on the same features, can approach but not beat
        assert values["gd_loss/ng_loss@Nmax"] >= 1.0
        assert 0.0 < values["alpha_gd"] and 0.0 < values["alpha_ng"] < 1.0
        assert values["alpha_ng_se"] > 0 and values["alpha_gd_se"] > 0
        assert ev.passed[seed] == (values["gap/se"] > 2.0)  # the rule: α_NG − α_GD > 2 SE of the difference
