"""The exact max-norm check, and the deferred read (on an accelerator when every chain is fused).

The deferred path is exercised on CPU by setting ``finite.DEFER_ON_CPU``: a bad step's fused kernels skip
themselves on the flag, ``step()`` returns, and the next call raises (or counts the skip) after undoing the
bad step's step counts and new state.
"""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.core import finite


@pytest.fixture
def deferred(monkeypatch):
    monkeypatch.setattr(finite, "DEFER_ON_CPU", True)


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(6, 5, generator=g)), torch.nn.Parameter(torch.randn(5, generator=g))]


def _grads(step, bad_at=None):
    g = torch.Generator().manual_seed(100 + step)
    gs = [torch.randn(6, 5, generator=g), torch.randn(5, generator=g)]
    if step == bad_at:
        gs[1][2] = float("nan")
    return gs


def _opt(ps, nonfinite="error", name="adamw"):
    groups = [{"params": [ps[0]], "param_names": ["w"], "role": "matrix"},
              {"params": [ps[1]], "param_names": ["b"], "role": "vector"}]
    return optimlab.create(groups, name, lr=0.1, nonfinite=nonfinite)


def _run(opt, ps, steps, bad_at=None):
    for t in range(steps):
        for p, g in zip(ps, _grads(t, bad_at)):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("grad", [3e38, -3e38, 1e30])
def test_the_verdict_is_exact_on_huge_finite_gradients(monkeypatch, grad, exact):
    # exact (the accelerator's max-norm): the flag itself never fires on finite values; CPU (2-norm): a sum of
    # squares overflows at ~1e19 and raises the flag, and bad() confirms per gradient that nothing is wrong
    monkeypatch.setattr(finite, "DEFER_ON_CPU", exact)
    cpu = torch.device("cpu")
    for dtype, value in ((torch.float32, grad), (torch.float64, grad * 1e200 if abs(grad) < 1e38 else grad),
                         (torch.bfloat16, grad)):
        gs = [torch.full((1000,), value, dtype=dtype), torch.ones(3, dtype=dtype)]
        check = finite.Check(gs)
        assert check.bad() is None and check.can_defer() == exact
        if exact:
            assert float(check.found[cpu]) == 0.0
        gs[1][1] = float("inf")
        assert finite.Check(gs).bad() == 1 and float(finite.Check(gs).found[cpu]) == 1.0
        gs[1][1] = 1.0
        gs[0][999] = float("nan")
        assert finite.Check(gs).bad() == 0


def test_a_false_alarm_still_takes_the_step():
    # CPU flag raised by 3e38 gradients (finite): the fused kernel skipped itself, so the step reruns unflagged
    ps = _params()
    ref = [p.detach().clone() for p in ps]
    opt = _opt(ps)
    for p in ps:
        p.grad = torch.full_like(p, 3e38)
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(ref, ps)) and all(torch.isfinite(p).all() for p in ps)
    assert all(opt.state[p]["step"] == 1 for p in ps) and opt.skipped_steps == 0


def test_deferred_error_arrives_at_the_next_step_naming_the_parameter(deferred):
    ps = _params()
    opt = _opt(ps)
    _run(opt, ps, 2)
    before = [p.detach().clone() for p in ps]
    state_before = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[ps[0]].items()}
    for p, g in zip(ps, _grads(2, bad_at=2)):
        p.grad = g
    opt.step()  # no host read: returns, the fused kernel skipped itself on the flag
    assert all(torch.equal(a, p) for a, p in zip(before, ps))
    assert opt._pending is not None
    with pytest.raises(FloatingPointError, match=r"'b'.*previous step\(\)"):
        opt.step()
    # the bad step was undone: counts as after step 2, state untouched, parameters untouched
    assert all(opt.state[p]["step"] == 2 for p in ps)
    for k, v in state_before.items():
        assert torch.equal(opt.state[ps[0]][k], v) if torch.is_tensor(v) else opt.state[ps[0]][k] == v
    assert all(torch.equal(a, p) for a, p in zip(before, ps))


def test_deferred_skip_equals_a_run_without_the_bad_step(deferred):
    ps, ref = _params(), _params()
    opt, opt_ref = _opt(ps, "skip"), _opt(ref, "skip")
    _run(opt, ps, 6, bad_at=3)
    opt.settle()
    assert opt.skipped_steps == 1
    # the reference sees the same gradients with step 3 left out
    for t in [0, 1, 2, 4, 5]:
        for p, g in zip(ref, _grads(t)):
            p.grad = g
        opt_ref.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))
    assert opt.state_dict()["state"][0]["step"] == opt_ref.state_dict()["state"][0]["step"] == 5


def test_state_dict_settles_and_a_bad_first_step_leaves_no_state(deferred):
    ps = _params()
    opt = _opt(ps)
    _run(opt, ps, 1, bad_at=0)
    assert len(opt.state) == 2  # created, not yet undone
    with pytest.raises(FloatingPointError, match="'b'"):
        opt.state_dict()
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}


def test_unfused_chains_are_never_deferred(deferred):
    # muon's Newton–Schulz chain cannot skip itself on the flag: the step reads it at once
    ps = _params()
    opt = _opt(ps, name="muon")
    with pytest.raises(FloatingPointError, match="'b'.*has NaN"):
        _run(opt, ps, 1, bad_at=0)
    assert opt._pending is None and len(opt.state) == 0


def test_immediate_mode_on_cpu_by_default():
    ps = _params()
    opt = _opt(ps)
    with pytest.raises(FloatingPointError, match="'b'.*has NaN"):
        _run(opt, ps, 2, bad_at=1)
    assert opt._pending is None


def test_load_state_dict_drops_a_pending_check(deferred):
    ps = _params()
    opt = _opt(ps)
    _run(opt, ps, 1)
    sd = copy.deepcopy(opt.state_dict())  # torch's state_dict shares the live state dicts
    _run(opt, ps, 1, bad_at=0)
    opt.load_state_dict(sd)
    opt.settle()  # nothing pending: the loaded state replaced the bad step
    assert opt._pending is None and all(opt.state[p]["step"] == 1 for p in ps)
