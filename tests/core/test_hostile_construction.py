"""Hostile construction and stepping: each bad input is refused at construction (never at step()) with a
TypeError/ValueError naming the thing and the value; a NaN/Inf gradient anywhere raises FloatingPointError
naming that parameter, with parameters and state unchanged."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from hostile import assert_unchanged, snapshot
from models import mlp

nan, inf = float("nan"), float("inf")


def P(*shape, **kw):
    return torch.zeros(*shape or (3, 3), requires_grad=kw.pop("rg", True), **kw)


def _model():
    torch.manual_seed(0)
    return mlp()


# (id, call, exception, message regex)
CREATE = [
    ("name_none", lambda: optimlab.create(_model(), None), TypeError, r"name must be a str .*got None"),
    ("name_int", lambda: optimlab.create(_model(), 3), TypeError, r"name must be a str .*got 3"),
    ("name_typo", lambda: optimlab.create(_model(), "adamww"), ValueError, r"unknown optimizer 'adamww'"),
    ("per_role_int", lambda: optimlab.create(_model(), "adamw", per_role=5), TypeError, r"per_role must be a dict.*5"),
    ("per_role_value_int", lambda: optimlab.create(_model(), "adamw", per_role={"vector": 5}), TypeError,
     r"per_role\['vector'\] must be a dict of hyperparameters, got 5"),
    ("per_role_bad_role", lambda: optimlab.create(_model(), "adamw", per_role={"bias": {}}), ValueError,
     r"per_role keys must be roles .*'bias'"),
    ("per_role_lr_nan", lambda: optimlab.create(_model(), "muon", per_role={"vector": {"lr": nan}}), ValueError,
     r"muon\[vector\]: lr must be in .*got nan"),
    ("params_none", lambda: optimlab.create(None, "adamw"), TypeError, r"adamw: model_or_params must be .*NoneType"),
    ("params_int", lambda: optimlab.create(3, "adamw"), TypeError, r"model_or_params must be .*got int"),
    ("params_str", lambda: optimlab.create("weights", "adamw"), TypeError, r"model_or_params must be .*got str"),
    ("params_tensor", lambda: optimlab.create(P(), "adamw"), TypeError, r"not a single tensor .*shape \(3, 3\)"),
    ("params_dict", lambda: optimlab.create({"params": [P()]}, "adamw"), TypeError, r"model_or_params .*got dict"),
    ("params_set", lambda: optimlab.create({P()}, "adamw"), TypeError, r"ordered collection, got a set"),
    ("params_empty", lambda: optimlab.create([], "adamw"), ValueError, r"empty parameter list"),
    ("group_without_params", lambda: optimlab.create([{"lr": 0.1}], "adamw"), ValueError,
     r"param group 0 has no 'params'; got keys \['lr'\]"),
    ("group_params_none", lambda: optimlab.create([{"params": None}], "adamw"), TypeError,
     r"param group 0's params must be .*NoneType"),
    ("group_bad_role", lambda: optimlab.create([{"params": [P()], "role": "hidden"}], "adamw"), ValueError,
     r"role must be one of .*'hidden'"),
    ("group_param_int", lambda: optimlab.create([{"params": [P(2, 2, rg=False, dtype=torch.int64)]}], "adamw"),
     TypeError, r"parameter #0 of group 0 must be a floating-point tensor, got dtype torch.int64"),
    ("mix_dicts_tensors", lambda: optimlab.create([P(), {"params": [P()]}], "adamw"), TypeError, r"not a mix"),
    ("param_not_tensor", lambda: optimlab.create([P(), 3.0], "adamw"), TypeError,
     r"parameter #1 must be a tensor, got float"),
    ("param_int64", lambda: optimlab.create([P(2, 2, rg=False, dtype=torch.int64)], "adamw"), TypeError,
     r"parameter #0 must be a floating-point tensor, got dtype torch.int64"),
    ("param_bool", lambda: optimlab.create([P(2, 2, rg=False, dtype=torch.bool)], "adamw"), TypeError,
     r"got dtype torch.bool"),
    ("param_uint8", lambda: optimlab.create([P(4, rg=False, dtype=torch.uint8)], "sgd"), TypeError,
     r"got dtype torch.uint8"),
    ("param_empty_rows", lambda: optimlab.create([P(0, 4)], "adamw"), ValueError,
     r"parameter #0 is empty \(shape \(0, 4\)\)"),
    ("param_empty_cols", lambda: optimlab.create([P(4, 0)], "muon"), ValueError, r"is empty \(shape \(4, 0\)\)"),
    ("param_empty_vector", lambda: optimlab.create([P(0)], "sgd"), ValueError, r"is empty \(shape \(0,\)\)"),
    ("param_meta", lambda: optimlab.create([P(device="meta")], "adamw"), ValueError,
     r"parameter #0 is on the meta device \(shape \(3, 3\)\)"),
    ("named_param_int", lambda: optimlab.create([("w", P(2, 2, rg=False, dtype=torch.int32))], "adamw"), TypeError,
     r"parameter 'w' must be a floating-point tensor, got dtype torch.int32"),
    ("model_meta", lambda: optimlab.create(torch.nn.Linear(3, 3, device="meta"), "adamw"), ValueError,
     r"parameter 'weight' is on the meta device"),
    ("model_meta_muon", lambda: optimlab.create(torch.nn.Linear(3, 3, device="meta"), "muon"), ValueError,
     r"parameter 'weight' is on the meta device"),
    ("nonfinite_bad", lambda: optimlab.create(_model(), "adamw", nonfinite="zero"), ValueError,
     r"nonfinite must be one of .*'zero'"),
    ("fused_int", lambda: optimlab.create(_model(), "adamw", fused=1), TypeError, r"fused must be a bool, got 1"),
    ("q_seed_huge", lambda: optimlab.create(_model(), "dion", q_seed=2**70), ValueError,
     r"dion: q_seed must be at most 2\*\*53 in size, got 1180591620717411303424"),
    ("q_seed_negative", lambda: optimlab.create(_model(), "dion", q_seed=-1), ValueError, r"q_seed must be in"),
]

# every registered optimizer refuses these values of lr at construction
LR_BAD = [(-1.0, ValueError, r"lr must be in .*got -1.0"), (nan, ValueError, r"lr must be in .*got nan"),
          (inf, ValueError, r"lr must be in .*got inf"), ("0.1", TypeError, r"lr must be a number, got '0.1'"),
          (True, TypeError, r"lr must be a number, got True")]
LR_OPTIMIZERS = ("adamw", "adam", "muon", "sgd", "lion", "normuon", "dion")
for _name in LR_OPTIMIZERS:
    for _v, _e, _m in LR_BAD:
        CREATE.append((f"{_name}_lr_{_v}", (lambda n=_name, v=_v: optimlab.create(_model(), n, lr=v)), _e,
                       rf"{_name}: " + _m))
    CREATE.append((f"{_name}_unknown_kw", (lambda n=_name: optimlab.create(_model(), n, lr_typo=1)), TypeError,
                   rf"{_name}: unexpected hyperparameter 'lr_typo'; valid names are"))

for _v, _m in (((0.9, 1.0), r"betas\[1\] must be in"), ((nan, 0.9), r"betas\[0\] must be in .*nan"),
               (0.9, r"betas must be a pair"), ((0.9,), r"betas must be a pair"), ((-0.1, 0.9), r"betas\[0\]")):
    CREATE.append((f"adamw_betas_{_v}", (lambda v=_v: optimlab.create(_model(), "adamw", betas=v)), ValueError,
                   "adamw: " + _m))
for _v, _e in ((1.5, ValueError), (-0.1, ValueError), (nan, ValueError), ("x", TypeError)):
    CREATE.append((f"muon_momentum_{_v}", (lambda v=_v: optimlab.create(_model(), "muon", momentum=v)), _e,
                   r"muon: momentum must be"))


@pytest.mark.parametrize("call,err,pattern", [pytest.param(*c[1:], id=c[0]) for c in CREATE])
def test_hostile_construction(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()


# -- add_param_group ---------------------------------------------------------------------------------
ADD = [
    ("not_dict", lambda: [P()], TypeError, r"add_param_group takes a dict, got list"),
    ("no_params", lambda: {"lr": 0.1}, ValueError, r"a param group needs 'params'; got keys \['lr'\]"),
    ("params_none", lambda: {"params": None}, TypeError, r"params must be an iterable .*NoneType"),
    ("bad_role", lambda: {"params": [P()], "role": "hidden"}, ValueError, r"role must be one of .*'hidden'"),
    ("int_param", lambda: {"params": [P(2, 2, rg=False, dtype=torch.int64)]}, TypeError,
     r"must be a floating-point tensor, got dtype torch.int64"),
    ("empty_param", lambda: {"params": [P(0, 3)]}, ValueError, r"is empty \(shape \(0, 3\)\)"),
    ("meta_param", lambda: {"params": [P(device="meta")]}, ValueError, r"on the meta device"),
    ("lr_negative", lambda: {"params": [P()], "lr": -1}, ValueError, r"adamw\[matrix\]: lr must be in .*got -1"),
    ("unknown_hp", lambda: {"params": [P()], "momentum": 0.9}, TypeError, r"unexpected hyperparameter 'momentum'"),
    ("names_short", lambda: {"params": [P(), P()], "param_names": ["a"]}, ValueError,
     r"param_names must be a list of 2 names, got \['a'\]"),
]


@pytest.mark.parametrize("group,err,pattern", [pytest.param(*c[1:], id=c[0]) for c in ADD])
def test_hostile_add_param_group(group, err, pattern):
    model = _model()
    opt = optimlab.create(model, "adamw")
    n = len(opt.param_groups)
    with pytest.raises(err, match=pattern):
        opt.add_param_group(group())
    assert len(opt.param_groups) == n


def test_add_param_group_splits_by_role_and_keeps_hyperparameters():
    model, extra = _model(), torch.nn.Linear(4, 5)
    for name in ("adamw", "muon"):
        opt = optimlab.create(model, name)
        opt.add_param_group({"params": extra.parameters(), "lr": 0.123})
        new = opt.param_groups[-2:]
        assert [g["role"] for g in new] == ["matrix", "vector"]
        assert [g["params"][0] is p for g, p in zip(new, (extra.weight, extra.bias))] == [True, True]
        assert all(g["lr"] == 0.123 for g in new)
        assert all(len(g["param_names"]) == 1 for g in new)  # made up: the model's groups are named
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))], "role": "vector"})
        opt.add_param_group({"params": torch.nn.Linear(2, 2).named_parameters()})
        (model(torch.randn(2, 7)).sum() + extra(torch.randn(2, 4)).sum()).backward()
        opt.step()


# -- stepping: a NaN/Inf gradient in any parameter -----------------------------------------------------
STEP_OPTIMIZERS = ("adamw", "adam", "muon", "sgd", "lion")
POSITIONS = range(6)  # mlp(): 3 weights, 3 biases
STEP = [(n, pos, bad) for n in STEP_OPTIMIZERS for pos in POSITIONS for bad in (nan, inf, -inf)]


@pytest.mark.parametrize("name,pos,bad", STEP, ids=[f"{n}-param{p}-{b}" for n, p, b in STEP])
def test_nonfinite_gradient_names_the_parameter_and_changes_nothing(name, pos, bad):
    model = _model()
    opt = optimlab.create(model, name)
    x = torch.randn(4, 7)
    model(x).pow(2).sum().backward()
    opt.step()  # state exists now
    opt.zero_grad()
    model(x).pow(2).sum().backward()
    pname, p = list(model.named_parameters())[pos]
    p.grad.view(-1)[-1] = bad
    before = snapshot(model, opt)
    with pytest.raises(FloatingPointError, match=rf"{name}: gradient of parameter '{pname}' \(shape "
                                                 rf"\({', '.join(map(str, p.shape))},?\)\) has NaN or Inf"):
        opt.step()
    assert_unchanged(before, model, opt)


@pytest.mark.parametrize("name", STEP_OPTIMIZERS)
def test_nonfinite_on_the_first_step_creates_no_state(name):
    model = _model()
    opt = optimlab.create(model, name)
    model(torch.randn(4, 7)).sum().backward()
    list(model.parameters())[3].grad[0] = nan
    before = snapshot(model, opt)
    with pytest.raises(FloatingPointError, match=r"parameter '2.bias'"):
        opt.step()
    assert_unchanged(before, model, opt)
    assert len(opt.state) == 0


@pytest.mark.parametrize("name", STEP_OPTIMIZERS)
def test_skip_counts_and_changes_nothing_else(name):
    model = _model()
    opt = optimlab.create(model, name, nonfinite="skip")
    model(torch.randn(4, 7)).sum().backward()
    opt.step()
    list(model.parameters())[4].grad[0, 0] = inf
    params = [p.detach().clone() for p in model.parameters()]
    steps = [s["step"] for s in opt.state.values()]
    opt.step()
    assert opt.skipped_steps == 1 and steps == [s["step"] for s in opt.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))


@pytest.mark.parametrize("name", ("adamw", "muon"))
def test_huge_finite_gradients_are_not_a_false_alarm(name):
    # the norm pass overflows on 1e30 (its square is inf): the exact check must clear it and the step run
    models = [_model(), _model()]
    opts = [optimlab.create(m, name, nonfinite=mode) for m, mode in zip(models, ("error", "ignore"))]
    for m in models:
        for p in m.parameters():
            p.grad = torch.full_like(p, 1e30)
    for o in opts:
        o.step()
    for a, b in zip(*(m.parameters() for m in models)):
        assert torch.equal(a, b) and bool(a.isfinite().all())
    assert all(s["step"] == 1 for s in opts[0].state.values())
    assert math.isfinite(float(sum(p.detach().sum() for p in models[0].parameters())))
