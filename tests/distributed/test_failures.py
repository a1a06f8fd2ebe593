"""Mismatched settings across ranks and a rank failing mid-step: clear errors, never a hang."""

from __future__ import annotations

import re

import pytest

from dist_workers import STEP_TIMEOUT, launch, w_mismatch

MISMATCHES = {
    "construction": "optimizer hyperparameters differ across ranks .*momentum=0.9",
    "scheduler": "optimizer hyperparameters differ across ranks .*lr=",
    "grads": "optimizer gradients differ across ranks",
}


@pytest.mark.timeout(300)
def test_mismatched_settings_and_nonfinite_gradients_are_errors_on_every_rank(tmp_path):
    res = launch(w_mismatch, 2, tmp_path, [*MISMATCHES, "nan"], timeout=240)
    for rank, r in enumerate(res):
        assert "tb" not in r, r.get("tb")  # the worker itself did not crash
        for case, match in MISMATCHES.items():
            e = r[case]["error"]
            assert e is not None and e.startswith("ValueError") and re.search(match, e), (rank, e)
    # a non-finite gradient on one rank refuses the step on every rank, naming the parameter where it is
    assert res[1]["nan"]["error"].startswith("FloatingPointError") and "blocks.0.fc.weight" in res[1]["nan"]["error"]
    assert res[0]["nan"]["error"].startswith("FloatingPointError") and "rank(s) [1]" in res[0]["nan"]["error"]


@pytest.mark.timeout(260)
@pytest.mark.parametrize("case", ["fail", "fail_alive"])
def test_rank_failing_mid_step_gives_a_bounded_clear_error(tmp_path, case):
    # "fail": the failed process exits (its peer sees the connection close); "fail_alive": it stays alive,
    # and its peer waits out the optimizer's own timeout (3 s here), not the process group's (120 s)
    res = launch(w_mismatch, 2, tmp_path, [case], timeout=200)
    errors = [r[case]["error"] for r in res]
    seconds = [r[case]["seconds"] for r in res]
    assert errors[1] == "RuntimeError: injected failure on rank 1"
    assert errors[0].startswith("DistributedStepError") and "Another rank probably failed mid-step" in errors[0]
    assert seconds[0] < STEP_TIMEOUT + 20
    if case == "fail_alive":
        assert "timed out" in errors[0] and seconds[0] >= 3.0
