"""Fast protocols of the closure-aware-engine claims (ghosts of softmax, step-size rules, rates and biases): each
gives a verdict with finite evidence and a figure. Those whose fast protocol takes more than ~8 s on one core are
marked slow."""
import math

import pytest

from optimlab.lab.claims import VERDICTS, run_claim

QUICK = ["ghosts-safe-radius", "ghosts-controller-lr-spike", "ghosts-temperature-spread"]
SLOW = ["l-dog-vs-tuned", "udog-convex", "polyak-momentum-insensitive", "sania-scale-invariance",
        "aegd-energy-stability", "ngd-generalized-smooth-rate", "rmsprop-generalized-smooth", "fd-gr-rich-regime",
        "asgd-subspace-bias", "move-on-muon-dissipation"]
_CACHE = {}


def evidence(claim_id, tmp_path_factory):
    if claim_id not in _CACHE:
        _CACHE[claim_id] = (run_claim(claim_id, fast=True, out_dir=tmp_path_factory.mktemp("claims")))
    return _CACHE[claim_id]


def check(ev):
    assert ev.verdict in VERDICTS and ev.verdict != "pending"
    assert ev.figure_path and ev.figure_path.endswith(f"{ev.claim_id}-fast.png")
    assert set(ev.measurements) == set(ev.passed) and len(ev.measurements) >= 2
    for values in ev.measurements.values():
        assert values and all(isinstance(v, float) and not math.isnan(v) for v in values.values())


@pytest.mark.parametrize("claim_id", QUICK)
def test_fast_protocol_gives_a_verdict_with_finite_evidence(claim_id, tmp_path_factory):
    check(evidence(claim_id, tmp_path_factory))


@pytest.mark.slow
@pytest.mark.parametrize("claim_id", SLOW)
def test_slow_fast_protocols_give_a_verdict(claim_id, tmp_path_factory):
    check(evidence(claim_id, tmp_path_factory))


def test_controller_run_survives_the_spike(tmp_path_factory):
    ev = evidence("ghosts-controller-lr-spike", tmp_path_factory)
    for v in ev.measurements.values():
        assert v["acc_controller"] > 0.5 and 0 <= v["acc_plain"] <= 1


@pytest.mark.slow
def test_aegd_energy_never_increases_and_gd_diverges_somewhere(tmp_path_factory):
    ev = evidence("aegd-energy-stability", tmp_path_factory)
    for v in ev.measurements.values():
        assert all(x == 0 for k, x in v.items() if k.endswith("r_increases"))
        assert any(x == 1 for k, x in v.items() if k.endswith("gd_diverged"))
