"""Fast protocols of the closure-aware-engine claims (ghosts of softmax, step-size rules): each gives a verdict
with finite evidence and a figure."""
import math

import pytest

from optimlab.lab.claims import VERDICTS, run_claim

WP1_CLAIMS = ["ghosts-safe-radius", "ghosts-controller-lr-spike", "ghosts-temperature-spread", "l-dog-vs-tuned",
              "udog-convex", "polyak-momentum-insensitive", "sania-scale-invariance", "aegd-energy-stability"]


@pytest.mark.parametrize("claim_id", WP1_CLAIMS)
def test_fast_protocol_gives_a_verdict_with_finite_evidence(claim_id, tmp_path):
    ev = run_claim(claim_id, fast=True, out_dir=tmp_path)
    assert ev.verdict in VERDICTS and ev.verdict != "pending"
    assert ev.figure_path and (tmp_path / f"{claim_id}-fast.png").exists()
    assert set(ev.measurements) == set(ev.passed) and len(ev.measurements) >= 2
    for values in ev.measurements.values():
        assert values and all(isinstance(v, float) and not math.isnan(v) for v in values.values())


def test_controller_run_survives_the_spike(tmp_path):
    ev = run_claim("ghosts-controller-lr-spike", fast=True, out_dir=tmp_path)
    for v in ev.measurements.values():
        assert v["acc_controller"] > 0.5 and 0 <= v["acc_plain"] <= 1


def test_aegd_energy_never_increases_and_gd_diverges_somewhere(tmp_path):
    ev = run_claim("aegd-energy-stability", fast=True, out_dir=tmp_path)
    for v in ev.measurements.values():
        assert all(x == 0 for k, x in v.items() if k.endswith("r_increases"))
        assert any(x == 1 for k, x in v.items() if k.endswith("gd_diverged"))
