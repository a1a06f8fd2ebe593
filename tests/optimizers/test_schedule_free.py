"""Schedule-free optimizers: parity with the literal transcriptions, train/eval modes, checkpoints."""

import copy

import pytest
import torch
from torch import nn

import optimlab
from models import mlp, regression_batches
from optimlab.reference import sf_adamw_step, sf_normuon_step, sf_sgd_step
from optimlab.reference.schedule_free import x_eval
from optimlab.transforms import ScheduleFree

SHAPES = [(6, 4), (4, 6), (5, 5), (5, 5), (7,)]
MATRICES = [(6, 4), (4, 6), (5, 5), (5, 5)]


def run_both(name, hp, ref_step, ref_hp, shapes=SHAPES, steps=25, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    ours = [nn.Parameter(torch.randn(*s, generator=g, dtype=dtype)) for s in shapes]
    refs = [p.detach().clone() for p in ours]
    states = [{} for _ in refs]
    opt = optimlab.create(ours, name, **hp)
    for _ in range(steps):
        for p, r, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=dtype) + 0.3 * p.detach()  # depends on y
            p.grad = grad
            ref_step(r, grad.clone(), st, **ref_hp)
        opt.step()
    return opt, ours, refs, states


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


SGD_CASES = [dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.5, weight_decay=0.1, warmup_steps=7),
             dict(lr=0.1, momentum=0.9, r=1.0, weight_lr_power=0.0)]


@pytest.mark.parametrize("hp", SGD_CASES)
def test_sf_sgd_matches_reference(hp):
    ref_hp = dict(lr=hp["lr"], beta=hp["momentum"], wd=hp.get("weight_decay", 0.0),
                  warmup=hp.get("warmup_steps", 0), r=hp.get("r", 0.0), weight_lr_power=hp.get("weight_lr_power", 2.0))
    opt, ours, refs, states = run_both("sf_sgd", hp, sf_sgd_step, ref_hp)
    for p, r, st in zip(ours, refs, states):
        assert rel(p.detach(), r) < 1e-12
        assert rel(opt.state[p]["schedule_free.x"], x_eval(st)) < 1e-12
        assert opt.state[p]["schedule_free.weight_sum"] == pytest.approx(st["weight_sum"], rel=1e-14)


def test_parameters_that_skip_steps_keep_their_own_t_and_weights():
    """A parameter without a gradient for some steps is at another t (warmup, averaging weight) than the rest."""
    g = torch.Generator().manual_seed(1)
    ours = [nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64)) for _ in range(2)]
    refs, states = [p.detach().clone() for p in ours], [{}, {}]
    opt = optimlab.create(ours, "sf_sgd", lr=0.1, warmup_steps=6)
    for step in range(12):
        for i, (p, r, st) in enumerate(zip(ours, refs, states)):
            if i == 1 and step in (2, 3, 4):
                p.grad = None
                continue
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            sf_sgd_step(r, p.grad.clone(), st, lr=0.1, beta=0.9, warmup=6)
        opt.step()
    assert opt.state[ours[0]]["step"] == 12 and opt.state[ours[1]]["step"] == 9
    for p, r in zip(ours, refs):
        assert rel(p.detach(), r) < 1e-12


@pytest.mark.parametrize("hp", [dict(lr=0.01), dict(lr=0.02, betas=(0.95, 0.99), weight_decay=0.05, warmup_steps=10)])
def test_sf_adamw_matches_algorithm_1(hp):
    b1, b2 = hp.get("betas", (0.9, 0.999))
    ref_hp = dict(lr=hp["lr"], beta1=b1, beta2=b2, eps=1e-8, wd=hp.get("weight_decay", 0.0),
                  warmup=hp.get("warmup_steps", 0))
    opt, ours, refs, states = run_both("sf_adamw", hp, sf_adamw_step, ref_hp)
    for p, r, st in zip(ours, refs, states):
        assert rel(p.detach(), r) < 1e-12
        assert rel(opt.state[p]["schedule_free.x"], x_eval(st)) < 1e-12
    # a wrong warmup (it also changes the averaging weights) is far outside the tolerance
    _, ours2, refs2, _ = run_both("sf_adamw", hp, sf_adamw_step, {**ref_hp, "warmup": 3 - ref_hp["warmup"] // 10 * 3})
    assert max(rel(p.detach(), r) for p, r in zip(ours2, refs2)) > 1e-4


@pytest.mark.parametrize("hp", [dict(lr=0.01), dict(lr=0.02, momentum=0.9, beta1=0.8, beta2=0.9, weight_decay=0.2,
                                                    warmup_steps=5)])
def test_sf_normuon_matches_reference(hp):
    hp = {"momentum": 0.95, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1, **hp}
    ref_hp = dict(lr=hp["lr"], mu=hp["momentum"], beta1=hp["beta1"], beta2=hp["beta2"], eps=1e-7,
                  wd=hp["weight_decay"], warmup=hp.get("warmup_steps", 0))
    opt, ours, refs, states = run_both("sf_normuon", {**hp, "ortho_backend": "svd"}, sf_normuon_step, ref_hp,
                                       shapes=MATRICES)
    for p, r, st in zip(ours, refs, states):
        assert rel(p.detach(), r) < 1e-10
        assert rel(opt.state[p]["schedule_free.x"], x_eval(st)) < 1e-10


def test_sf_normuon_decays_the_fast_iterate_z():
    """Decay at z, not at y: with zero gradients z and x shrink by exactly (1 − lr·λ) per step."""
    p = nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    opt = optimlab.create([p], "sf_normuon", lr=0.1, weight_decay=0.5)  # NS maps a zero momentum to zero
    p.grad = torch.randn(4, 6, dtype=torch.float64)
    opt.step()
    z0 = opt.state[p]["schedule_free.z"].clone()
    p.grad = torch.zeros_like(p)  # polar(momentum) is still non-zero: check the decay term alone
    opt.param_groups[0]["momentum"] = 0.0
    opt.step()
    assert torch.equal(opt.state[p]["schedule_free.z"], z0 * (1 - 0.1 * 0.5))


def trained(name, steps=30, **hp):
    torch.manual_seed(0)
    model = mlp()
    opt = optimlab.create(model, name, **hp)
    data = regression_batches()
    for _ in range(steps):
        x, y = next(data)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("name", ["sf_sgd", "sf_adamw", "sf_normuon"])
def test_eval_holds_x_and_train_restores_y_exactly(name):
    model, opt = trained(name, warmup_steps=5)
    y = [p.detach().clone() for p in model.parameters()]
    assert opt.eval() is opt and not opt.training
    for p in model.parameters():
        assert torch.equal(p, opt.state[p]["schedule_free.x"])
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), y))
    opt.eval()  # idempotent
    opt.train()
    for p, q in zip(model.parameters(), y):
        assert torch.equal(p, q)
    with pytest.raises(TypeError, match="bool"):
        opt.train("yes")


def test_step_in_eval_mode_is_an_error_and_changes_nothing():
    model, opt = trained("sf_adamw", steps=3)
    opt.eval()
    x, y = next(regression_batches())
    nn.functional.mse_loss(model(x), y).backward()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(RuntimeError, match=r"eval mode; call opt.train\(\)"):
        opt.step()
    after = opt.state_dict()
    assert all(before["state"][i]["step"] == after["state"][i]["step"] for i in before["state"])


def test_modes_are_harmless_for_other_optimizers():
    model, opt = trained("adamw", steps=2)
    snap = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(snap, model.parameters()))
    opt.step()  # no mode-dependent transform: stepping in eval mode is allowed
    opt.train()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_state_dict_round_trip_mid_run_is_bit_identical(mode):
    model, opt = trained("sf_adamw", steps=7, warmup_steps=10)
    getattr(opt, mode)()
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert saved_opt["optimlab"]["training"] == (mode == "train")
    clone = mlp()
    clone.load_state_dict(saved_model)
    opt2 = optimlab.create(clone, "sf_adamw", warmup_steps=10)
    opt2.load_state_dict(saved_opt)
    assert opt2.training == opt.training
    for o, m in ((opt, model), (opt2, clone)):
        o.train()
        data = regression_batches(seed=3)
        for _ in range(6):
            x, y = next(data)
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
        o.eval()
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), clone.parameters()):
        for k, v in opt.state[p].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt2.state[q][k])), k
    # the weight sum is a Python float, not cast to the parameter dtype by load_state_dict
    assert isinstance(opt2.state[next(clone.parameters())]["schedule_free.weight_sum"], float)


@pytest.mark.parametrize("name", ["sf_sgd", "sf_adamw", "sf_normuon"])
def test_loss_falls_at_the_average(name):
    torch.manual_seed(0)
    model = mlp()
    fixed = next(regression_batches(seed=7, n=256))
    before = nn.functional.mse_loss(model(fixed[0]), fixed[1]).item()
    model, opt = trained(name, steps=80)
    opt.eval()
    after = nn.functional.mse_loss(model(fixed[0]), fixed[1]).item()
    # measured: 0.036, 0.20, 0.54 of the initial loss (the NorMuon step has RMS 0.2·lr: slowest start)
    assert after < 0.7 * before, f"{name}: {before:.4f} -> {after:.4f}"


def test_bf16_weight_sum_keeps_float_precision():
    """The averaging weight sum is a Python float: in bf16 a sum of 300 equal weights would stall at 256."""
    p = nn.Parameter(torch.randn(3, 3, dtype=torch.bfloat16))
    opt = optimlab.create([p], "sf_sgd", lr=1.0)
    for _ in range(300):
        p.grad = torch.zeros_like(p)
        opt.step()
    assert opt.state[p]["schedule_free.weight_sum"] == 300.0


def test_bad_configuration_messages():
    with pytest.raises(ValueError, match=r"sf_sgd: momentum must be in \[0, 1\), got 1.0"):
        optimlab.create([nn.Parameter(torch.zeros(2, 2))], "sf_sgd", momentum=1.0)
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        optimlab.create([nn.Parameter(torch.zeros(2, 2))], "sf_adamw", warmup_steps=-1)
    with pytest.raises(ValueError, match="beta must name one of"):
        ScheduleFree("beta3")
    with pytest.raises(ValueError, match="decay_at"):
        ScheduleFree(decay_at="x")
    with pytest.raises(ValueError, match="reads β2 from 'betas'"):
        ScheduleFree("momentum", adam_bias_correction=True)
