"""Hostile checkpoints: every edited or malformed state dict is refused with a TypeError/ValueError that
names the entry and the value, and the optimizer (state, groups, parameters) is unchanged afterwards."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from hostile import assert_unchanged, snapshot
from models import mlp

OPTIMIZERS = ("adamw", "muon", "sgd", "lion")


def _trained(name: str):
    torch.manual_seed(0)
    model = mlp()
    opt = optimlab.create(model, name, **({"momentum": 0.9} if name == "sgd" else {}))
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 7)).pow(2).sum().backward()
        opt.step()
    return model, opt


def _tensor_key(sd):
    return next(k for k, v in sd["state"][0].items() if torch.is_tensor(v))


def _set(path, value):
    def f(sd):
        d = sd
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
        return sd
    return f


def _edit_state(key_fn, fn):
    def f(sd):
        k = key_fn(sd)
        sd["state"][0][k] = fn(sd["state"][0][k])
        return sd
    return f


def _swap_ids(sd):
    ids = sd["param_groups"][0]["params"]
    ids[0], ids[1] = ids[1], ids[0]
    return sd


def _swap_same_shape_ids(sd):
    # two parameters of the same shape: without the id-order rule this would silently swap their state
    g = sd["param_groups"][0]
    shapes = sd["optimlab"]["shapes"][0]
    for i in range(len(shapes)):
        for j in range(i + 1, len(shapes)):
            if tuple(shapes[i]) == tuple(shapes[j]):
                g["params"][i], g["params"][j] = g["params"][j], g["params"][i]
                return sd
    g["params"][0] += 100  # no same-shape pair: an unknown id instead
    return sd


def _drop_shape(sd):
    sd["optimlab"]["shapes"][0] = sd["optimlab"]["shapes"][0][:-1]
    return sd


def _first_hp(sd):
    return sd["param_groups"][0]


# (id, mutation, exception, message regex, applies to)
CASES = [
    ("not_a_dict_none", lambda sd: None, TypeError, r"state dict must be a dict, got NoneType", None),
    ("not_a_dict_list", lambda sd: [sd], TypeError, r"state dict must be a dict, got list", None),
    ("not_a_dict_str", lambda sd: "state", TypeError, r"state dict must be a dict, got str", None),
    ("no_state", lambda sd: {k: v for k, v in sd.items() if k != "state"}, ValueError, r"no 'state' entry", None),
    ("no_groups", lambda sd: {k: v for k, v in sd.items() if k != "param_groups"}, ValueError,
     r"no 'param_groups' entry", None),
    ("no_meta", lambda sd: {k: v for k, v in sd.items() if k != "optimlab"}, ValueError, r"no 'optimlab' entry", None),
    ("empty_dict", lambda sd: {}, ValueError, r"not an optimlab state dict", None),
    ("state_is_list", _set(["state"], []), TypeError, r"'state' must be a dict, got list", None),
    ("groups_is_dict", _set(["param_groups"], {}), TypeError, r"'param_groups' must be a list, got dict", None),
    ("meta_is_list", _set(["optimlab"], []), TypeError, r"'optimlab' must be a dict, got list", None),
    ("other_optimizer", _set(["optimlab", "optimizer"], "adam"), ValueError, r"saved by optimizer 'adam'", None),
    ("training_str", _set(["optimlab", "training"], "no"), TypeError, r"'training' must be a bool, got 'no'", None),
    ("training_int", _set(["optimlab", "training"], 1), TypeError, r"'training' must be a bool, got 1", None),
    ("roles_edited", lambda sd: _set(["optimlab", "roles", 0], "embedding")(sd), ValueError,
     r"saved role 'embedding'", None),
    ("group_role_edited", lambda sd: _set(["param_groups", 0, "role"], "embedding")(sd), ValueError,
     r"saved group role 'embedding'", None),
    ("roles_short", lambda sd: _set(["optimlab", "roles"], sd["optimlab"]["roles"][:-1])(sd), ValueError,
     r"param groups \(by 'roles'\)", None),
    ("groups_short", lambda sd: _set(["param_groups"], sd["param_groups"][:-1])(sd), ValueError,
     r"param groups \(by 'param_groups'\)", None),
    ("group_not_dict", _set(["param_groups", 0], 3), TypeError, r"param group 0 must be a dict, got int", None),
    ("ids_not_ints", lambda sd: _set(["param_groups", 0, "params"], ["a", "b"])(sd), TypeError,
     r"'params' must be a list of int ids, got \['a', 'b'\]", None),
    ("ids_bool", lambda sd: _set(["param_groups", 0, "params"], [True] * len(sd["param_groups"][0]["params"]))(sd),
     TypeError, r"list of int ids", None),
    ("ids_swapped", _swap_ids, ValueError, r"saved ids must be 0, 1, 2\.\.\. in group order|has shape", None),
    ("ids_swapped_same_shape", _swap_same_shape_ids, ValueError, r"saved ids must be 0, 1, 2|state for ids|shape",
     None),
    ("ids_duplicate", lambda sd: _set(["param_groups", 0, "params", 1], sd["param_groups"][0]["params"][0])(sd),
     ValueError, r"saved id 0 appears twice", None),
    ("ids_missing", lambda sd: _set(["param_groups", 0, "params"], sd["param_groups"][0]["params"][:-1])(sd),
     ValueError, r"params, saved \d+ ids", None),
    ("shapes_short", _drop_shape, ValueError, r"saved \d+ ids and \d+ shapes", None),
    ("shape_edited", lambda sd: _set(["optimlab", "shapes", 0, 0], (5, 5))(sd), ValueError,
     r"has shape \(\d+, \d+\), saved \(5, 5\)", None),
    ("extra_state_id", lambda sd: _set(["state", 999], copy.deepcopy(sd["state"][0]))(sd), ValueError,
     r"state for ids \[999\]", None),
    ("state_not_dict", _set(["state", 0], [1, 2]), TypeError, r"saved state must be a dict, got list", None),
    ("state_key_missing", lambda sd: _set(["state", 0], {"step": 2})(sd), ValueError, r"saved state keys \['step'\]",
     None),
    ("state_key_extra", lambda sd: _set(["state", 0, "evil"], torch.zeros(1))(sd), ValueError, r"'evil'", None),
    ("step_negative", _set(["state", 0, "step"], -5), ValueError, r"'step' must be >= 0, got -5", None),
    ("step_float", _set(["state", 0, "step"], 2.5), TypeError, r"'step' must be an int, got 2.5", None),
    ("step_bool", _set(["state", 0, "step"], True), TypeError, r"'step' must be an int, got True", None),
    ("step_tensor", _set(["state", 0, "step"], torch.tensor(2.0)), TypeError, r"'step' must be an int, got tensor",
     None),
    ("state_wrong_shape", _edit_state(_tensor_key, lambda v: torch.zeros(v.numel() + 1)), ValueError,
     r"has shape \(\d+,\), expected", None),
    ("state_transposed", _edit_state(_tensor_key, lambda v: v.t().contiguous() if v.ndim == 2 else v[None]),
     ValueError, r"has shape .* expected", None),
    ("state_flattened", _edit_state(_tensor_key, lambda v: v.reshape(-1)), ValueError, r"has shape .* expected",
     None),
    ("state_wrong_dtype", _edit_state(_tensor_key, lambda v: v.double()), ValueError,
     r"has dtype torch.float64, expected torch.float32", None),
    ("state_int_dtype", _edit_state(_tensor_key, lambda v: v.long()), ValueError, r"has dtype torch.int64", None),
    ("state_meta", _edit_state(_tensor_key, lambda v: torch.empty_like(v, device="meta")), ValueError,
     r"device meta", None),
    ("state_sparse", _edit_state(_tensor_key, lambda v: v.to_sparse()), ValueError, r"layout torch.sparse_coo", None),
    ("state_not_tensor", _edit_state(_tensor_key, lambda v: v.tolist()), TypeError, r"must be a tensor, got list",
     None),
    ("state_non_contiguous", _edit_state(_tensor_key, lambda v: v.t().contiguous().t() if v.ndim == 2 and
                                         v.shape[0] != v.shape[1] else torch.zeros(v.numel() + 1)),
     ValueError, r"not contiguous|has shape", None),
    ("lr_negative", lambda sd: _set(["param_groups", 0, "lr"], -1)(sd), ValueError, r"lr must be in .*got -1", None),
    ("lr_nan", lambda sd: _set(["param_groups", 0, "lr"], float("nan"))(sd), ValueError, r"lr must be in .*got nan",
     None),
    ("lr_inf", lambda sd: _set(["param_groups", 0, "lr"], float("inf"))(sd), ValueError, r"lr .*got inf", None),
    ("lr_str", lambda sd: _set(["param_groups", 0, "lr"], "0.1")(sd), TypeError, r"lr must be a number, got '0.1'",
     None),
    ("lr_missing", lambda sd: (sd["param_groups"][0].pop("lr"), sd)[1], ValueError, r"lacks hyperparameters \['lr'\]",
     None),
    ("unknown_hparam", lambda sd: _set(["param_groups", 0, "evil"], 1)(sd), TypeError,
     r"unexpected hyperparameter 'evil'", None),
    ("initial_lr_negative", lambda sd: _set(["param_groups", 0, "initial_lr"], -1.0)(sd), ValueError,
     r"'initial_lr' must be a finite number >= 0, got -1.0", None),
    ("param_names_short", lambda sd: _set(["param_groups", 0, "param_names"], ["x"])(sd), TypeError,
     r"'param_names' must be a list of \d+ strings, got \['x'\]", None),
    ("param_names_ints", lambda sd: _set(["param_groups", 0, "param_names"],
                                         list(range(len(sd["param_groups"][0]["params"]))))(sd), TypeError,
     r"'param_names' must be a list", None),
    ("wd_negative", lambda sd: _set(["param_groups", 0, "weight_decay"], -0.1)(sd), ValueError,
     r"weight_decay must be in .*got -0.1", None),
    ("betas_nan", lambda sd: _set(["param_groups", 0, "betas"], (float("nan"), 0.99))(sd), ValueError,
     r"betas\[0\] must be in .*got nan", ("adamw", "lion")),
    ("betas_one", lambda sd: _set(["param_groups", 0, "betas"], (0.9, 1.0))(sd), ValueError,
     r"betas\[1\] must be in .*got 1.0", ("adamw", "lion")),
    ("betas_scalar", lambda sd: _set(["param_groups", 0, "betas"], 0.9)(sd), ValueError,
     r"betas must be a pair .*got 0.9", ("adamw", "lion")),
    ("eps_negative", lambda sd: _set(["param_groups", 0, "eps"], -1e-8)(sd), ValueError, r"eps must be in", ("adamw",)),
    ("momentum_too_big", lambda sd: _set(["param_groups", 0, "momentum"], 1.5)(sd), ValueError,
     r"momentum must be in .*got 1.5", ("muon", "sgd")),
    ("nesterov_int", lambda sd: _set(["param_groups", 0, "nesterov"], 1)(sd), TypeError,
     r"nesterov must be a bool, got 1", ("muon", "sgd")),
    ("ns_steps_zero", lambda sd: _set(["param_groups", 0, "ns_steps"], 0)(sd), ValueError,
     r"ns_steps must be in \[1, 100\], got 0", ("muon",)),
    ("ns_dtype_bad", lambda sd: _set(["param_groups", 0, "ns_dtype"], "int8")(sd), ValueError,
     r"ns_dtype must be a floating dtype", ("muon",)),
]

PARAMS = [pytest.param(name, *case[1:4], id=f"{name}-{case[0]}") for case in CASES for name in OPTIMIZERS
          if case[4] is None or name in case[4]]


@pytest.mark.parametrize("name,mutate,err,pattern", PARAMS)
def test_hostile_checkpoint_is_refused_and_changes_nothing(name, mutate, err, pattern):
    model, opt = _trained(name)
    sd = mutate(copy.deepcopy(opt.state_dict()))
    before = snapshot(model, opt)
    with pytest.raises(err, match=pattern):
        opt.load_state_dict(sd)
    assert_unchanged(before, model, opt)
    # and it still steps
    model(torch.randn(2, 7)).sum().backward()
    opt.step()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_clean_round_trip_still_loads(name):
    model, opt = _trained(name)
    model2 = mlp()
    model2.load_state_dict(model.state_dict())
    opt2 = optimlab.create(model2, name, **({"momentum": 0.9} if name == "sgd" else {}))
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    x = torch.randn(3, 7)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(a, b)
