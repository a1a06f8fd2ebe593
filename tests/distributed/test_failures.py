"""Mismatched settings across ranks and a rank failing mid-step: clear errors, never a hang."""

from __future__ import annotations

import pytest

from dist_workers import STEP_TIMEOUT, launch, w_mismatch


def _errors(tmp_path, case: str) -> list:
    res = launch(w_mismatch, 2, tmp_path, case, timeout=60)
    return [r["error"] for r in res], [r["seconds"] for r in res]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case, match", [
    ("construction", "optimizer hyperparameters differ across ranks .*momentum=0.9"),
    ("scheduler", "optimizer hyperparameters differ across ranks .*lr="),
    ("grads", "optimizer gradients differ across ranks"),
])
def test_mismatched_settings_are_an_error_on_every_rank(tmp_path, case, match):
    import re

    errors, _ = _errors(tmp_path, case)
    for e in errors:
        assert e is not None and e.startswith("ValueError") and re.search(match, e), e


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", ["fail", "fail_alive"])
def test_rank_failing_mid_step_gives_a_bounded_clear_error(tmp_path, case):
    # "fail": the failed process exits (its peer sees the connection close); "fail_alive": it stays alive,
    # and its peer waits out the optimizer's own timeout (3 s here), not the process group's (30 s)
    errors, seconds = _errors(tmp_path, case)
    assert errors[1] == "RuntimeError: injected failure on rank 1"
    assert errors[0].startswith("DistributedStepError") and "Another rank probably failed mid-step" in errors[0]
    assert seconds[0] < STEP_TIMEOUT + 20
    if case == "fail_alive":
        assert "timed out" in errors[0] and seconds[0] >= 3.0


@pytest.mark.timeout(90)
def test_nonfinite_gradient_on_one_rank_refuses_the_step_everywhere(tmp_path):
    errors, _ = _errors(tmp_path, "nan")
    assert errors[1].startswith("FloatingPointError") and "blocks.0.fc.weight" in errors[1]
    assert errors[0].startswith("FloatingPointError") and "rank(s) [1]" in errors[0]
