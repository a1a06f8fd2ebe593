"""RMSProp and AdaGrad against torch.optim.RMSprop / torch.optim.Adagrad: 100 steps on the mixed-shape model
of test_parity_torch with a LambdaLR schedule, every combination of the options (momentum, centered,
weight_decay; lr_decay, initial_accumulator_value, weight_decay) and a non-default alpha / eps, ≤ 1e-6 relative."""

import itertools

import pytest
import torch

import optimlab
from test_parity_torch import Mixed, train  # same model, data and schedule as the adam/sgd parity tests


def _grid(base: dict, options: dict) -> dict:
    """Every combination of ``options`` (each on or off) on top of ``base``, keyed by the options that are on."""
    out = {}
    for on in itertools.product([False, True], repeat=len(options)):
        chosen = [k for k, flag in zip(options, on) if flag]
        out["-".join(chosen) or "plain"] = {**base, **{k: options[k] for k in chosen}}
    return out


RMSPROP = {**_grid(dict(lr=3e-3), dict(momentum=0.9, centered=True, weight_decay=1e-2)),
           "alpha-eps": dict(lr=1e-2, alpha=0.9, eps=1e-6)}
ADAGRAD = {**_grid(dict(lr=5e-2), dict(lr_decay=0.02, initial_accumulator_value=0.1, weight_decay=1e-2)),
           "eps": dict(lr=5e-2, eps=1e-6)}


def _with_foreach(opt, foreach):
    for g in opt.param_groups:
        g["foreach"] = foreach
    return opt


def _rel_err(ref, ours):
    return max((a - b).abs().max() for a, b in zip(ref, ours)) / max(r.abs().max() for r in ref)


def _moved(ours):
    torch.manual_seed(0)
    return max((a - b).abs().max() for a, b in zip(Mixed().parameters(), ours))


@pytest.mark.parametrize("case", list(RMSPROP))
@pytest.mark.parametrize("foreach", [True, False])
def test_rmsprop_matches_torch(case, foreach):
    hp = RMSPROP[case]
    ref = train(lambda m: _with_foreach(torch.optim.RMSprop(m.parameters(), **hp), foreach))
    ours = train(lambda m: optimlab.create(m, "rmsprop", **hp))
    assert _rel_err(ref, ours) <= 1e-6
    assert _moved(ours) > 1e-3


@pytest.mark.parametrize("case", list(ADAGRAD))
@pytest.mark.parametrize("foreach", [True, False])
def test_adagrad_matches_torch(case, foreach):
    hp = ADAGRAD[case]
    ref = train(lambda m: _with_foreach(torch.optim.Adagrad(m.parameters(), **hp), foreach))
    ours = train(lambda m: optimlab.create(m, "adagrad", **hp))
    assert _rel_err(ref, ours) <= 1e-6
    assert _moved(ours) > 1e-3


def test_rmsprop_state_keys_follow_the_options():
    model = torch.nn.Linear(3, 2)
    for hp, keys in [({}, {"rmsprop.square_avg"}),
                     ({"centered": True, "momentum": 0.5},
                      {"rmsprop.square_avg", "rmsprop.grad_avg", "rmsprop.momentum_buffer"})]:
        opt = optimlab.create(model.parameters(), "rmsprop", **hp)
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        assert set(opt.state[model.weight]) == {"step", *keys}


@pytest.mark.parametrize("name,hp,message", [
    ("rmsprop", {"alpha": 1.0}, r"rmsprop: alpha must be in \[0, 1\), got 1.0"),
    ("rmsprop", {"momentum": -0.1}, r"rmsprop: momentum must be in \[0, 1\), got -0.1"),
    ("adagrad", {"lr_decay": -1.0}, r"adagrad: lr_decay must be in \[0, inf\), got -1.0"),
    ("adagrad_norm", {"b0": 0.0}, r"adagrad_norm: b0 must be in \(0, inf\), got 0.0"),
    ("accelerated_sgd", {"kappa": 1.0}, r"accelerated_sgd\[.*\]: accelerated_sgd needs small_const²·xi <= kappa"),
    ("normalized_gd", {"norm_power": 1.5}, r"normalized_gd: norm_power must be in \[0, 1\], got 1.5"),
    ("regularized_muon", {"polar_eps": 0.0}, r"regularized_muon: polar_eps must be in \(0, inf\), got 0.0"),
])
def test_bad_hyperparameters_are_refused(name, hp, message):
    with pytest.raises(ValueError, match=message):
        optimlab.create(torch.nn.Linear(3, 2), name, **hp)
