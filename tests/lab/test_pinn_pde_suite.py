"""The PINN PDE suite (task ``pinn_pde``: heat2d, heat_nd, gray_scott, bz, ks, ks2d) and the collocation sampler it shares
with the 1-D ``pinn`` task.

Sampling: the shared sampler gives both tasks bit-identical point sets to their earlier private samplers (copied
below as they were). References: the KS solver conserves the mean, converges in dt at fourth order and in the
number of modes, and so does the 2-D KS solver, whose mean follows −½⟨|∇u|²⟩; the Oregonator solver converges in dt and dx and stays in its invariant rectangle [q, 1] × [0, 1];
the heat solutions are exact (zero residual). Training: AdamW (no weight decay) for 200 steps lowers eval_loss and
rel_l2 of each new equation by the stated factors. Options: refused with the option and the value named.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from optimlab.cli import main
from optimlab.lab.runner import run
from optimlab.lab.tasks import get_task
from optimlab.lab.tasks.base import generator
from optimlab.lab.tasks.pinn_points import grid_side, unit_points, wall_points
from optimlab.lab.tasks.pinn_refs import BZ, KS2D_LENGTH, bz_reference, bz_rest, ks2d_initial, ks2d_reference, \
    ks_initial, ks_reference
from optimlab.lab.tasks.pinn_suite import heat2d_exact


# ------------------------------------------------------------------ the earlier samplers, verbatim in effect

def _old_pinn_points(dims: int, n: int, gen):
    nb = max(2, n // 4)

    def unit(count):
        if gen is None:
            return (torch.arange(count) + 0.5) / count
        return torch.rand(count, generator=gen)

    if dims == 1:
        return unit(n)[:, None], torch.tensor([[0.0], [1.0]])
    if gen is None:
        side = max(2, int(math.sqrt(n)))
        x, t = torch.meshgrid(unit(side), unit(side), indexing="ij")
        interior = torch.stack([x.reshape(-1), t.reshape(-1)], dim=1)
    else:
        interior = torch.stack([unit(n), unit(n)], dim=1)
    side_x = (torch.arange(nb) % 2).float()
    boundary = torch.stack([side_x, unit(nb)], dim=1)
    initial = torch.stack([unit(nb), torch.zeros(nb)], dim=1)
    return interior, boundary, initial


def _old_suite_points(equation: str, n: int, gen):
    nb = n // 4
    if equation == "heat2d":
        interior = torch.rand(n, 3, generator=gen)
        initial = torch.cat([torch.rand(nb, 2, generator=gen), torch.zeros(nb, 1)], dim=1)
        side = torch.rand(nb, 3, generator=gen)
        axis = torch.arange(nb) % 2
        side[torch.arange(nb), axis] = (torch.arange(nb) // 2 % 2).float()
        return interior, initial, side
    interior = torch.rand(n, 2, generator=gen)
    initial = torch.stack([torch.rand(nb, generator=gen), torch.zeros(nb)], dim=1)
    times = torch.rand(nb, generator=gen)
    return interior, initial, times


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("equation, n", [("poisson", 128), ("heat", 128), ("heat", 50)])
def test_pinn_samples_are_bit_identical_to_the_earlier_sampler(seed, equation, n):
    inst = get_task("pinn", equation=equation, num_points=n).build(seed)
    dims = 1 if equation == "poisson" else 2
    for step in (0, 3):
        gen_new, gen_old = generator(seed, "points", step), generator(seed, "points", step)
        assert _same(inst._points(gen_new), _old_pinn_points(dims, n, gen_old))
    assert _same(inst._points(None), _old_pinn_points(dims, n, None))  # the evaluation grid
    assert _same(inst.batch(0), _old_pinn_points(dims, n, generator(seed, "points", 0)))


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("equation, n", [("heat2d", 256), ("heat2d", 36), ("gray_scott", 256)])
def test_pinn_pde_samples_are_bit_identical_to_the_earlier_sampler(seed, equation, n):
    inst = get_task("pinn_pde", equation=equation, num_points=n).build(seed)
    assert _same(inst.batch(0), _old_suite_points(equation, n, generator(seed, "points", 0)))
    assert _same(inst._points(generator(0, "eval-points")), _old_suite_points(equation, n, generator(0, "eval-points")))


def test_sampler_walls_alternate_faces_and_grid_side_is_an_integer_root():
    pts = wall_points(torch.Generator().manual_seed(0), 12, 3)
    rows = torch.arange(12)
    assert torch.equal(pts[rows, rows % 3], (rows // 3 % 2).float())
    assert ((pts >= 0) & (pts <= 1)).all()
    assert [grid_side(c, d) for c, d in [(64, 2), (63, 2), (27, 3), (26, 3), (1, 2), (10 ** 6, 2)]] == [8, 7, 3, 2, 2, 1000]
    assert unit_points(None, 27, 3).shape == (27, 3)


# ------------------------------------------------------------------ references and exact solutions

def test_heat_exact_solutions_have_zero_loss():
    for opts in (dict(equation="heat_nd", dim=3, frequency=2), dict(equation="heat_nd", dim=9),
                 dict(equation="heat2d", frequency=2)):
        inst = get_task("pinn_pde", num_points=64, **opts).build(0)

        class Exact(nn.Module):
            def forward(self, p):
                return inst.equation.exact(p)[:, None]

        assert float(inst.loss(Exact(), inst.batch(0)).detach()) < 1e-8, opts
        assert float(inst.loss(inst.model, inst.batch(0)).detach()) > 1e-2, opts
        assert inst.evaluate(Exact())["rel_l2"] == 0.0
    assert torch.equal(inst.exact(inst.grid), heat2d_exact(inst.grid, 2, 0.05))
    with pytest.raises(ValueError, match="'ks' has no closed-form solution"):
        get_task("pinn_pde", equation="ks", horizon=0.5).build(0).exact(inst.grid)


def test_ks_reference_conserves_the_mean_and_converges():
    x, t, u = ks_reference(10.0)
    assert np.allclose(u[0], ks_initial(x), atol=1e-12) and t[-1] == 10.0 and u.shape == (26, 128)
    assert np.abs(u.mean(axis=1)).max() < 1e-12  # the zero mode of u u_X + u_XX + u_XXXX vanishes
    assert np.abs(u[-1] - u[0]).max() > 0.5  # the profile moved
    assert np.abs(u - ks_reference(10.0, dt=0.0625)[2]).max() < 1e-4  # halving dt
    assert np.abs(u - ks_reference(10.0, points=256)[2][:, ::2]).max() < 1e-3  # doubling the modes
    # ETDRK4 is fourth order: errors against a fine solution fall ~16x per halving of dt
    fine = ks_reference(5.0, dt=0.005)[2]
    err = [np.abs(ks_reference(5.0, dt=h)[2] - fine).max() for h in (0.1, 0.05)]
    assert err[0] / err[1] > 12


def test_ks2d_reference_converges_and_its_mean_follows_the_gradient_energy():
    x, t, u = ks2d_reference(10.0)
    assert u.shape == (11, 32, 32) and np.allclose(u[0], ks2d_initial(*np.meshgrid(x, x, indexing="ij")), atol=1e-12)
    assert np.abs(u - ks2d_reference(10.0, dt=0.0625)[2]).max() < 1e-4  # halving dt
    assert np.abs(u - ks2d_reference(10.0, points=64)[2][:, ::2, ::2]).max() < 1e-4  # doubling the modes
    # the mean of u obeys d<u>/dt = −½ <|∇u|²> (Δu and Δ²u have zero mean): integrate over 40 saves
    x, t, u = ks2d_reference(5.0, saves=41)
    k = 2 * math.pi / KS2D_LENGTH * np.fft.fftfreq(32, 1 / 32)
    uh = np.fft.fft2(u, axes=(1, 2))
    energy = [np.mean(np.fft.ifft2(1j * k[:, None] * f).real ** 2 + np.fft.ifft2(1j * k[None, :] * f).real ** 2)
              for f in uh]
    drift = -0.5 * np.trapezoid(energy, t)
    assert drift < -0.1 and u[-1].mean() - u[0].mean() == pytest.approx(drift, rel=1e-2)


def test_bz_reference_stays_in_its_invariant_region_and_converges():
    x, t, u, v = bz_reference(1.0)
    assert u.min() >= BZ["q"] - 1e-12 and u.max() <= 1 + 1e-12 and v.min() >= 0 and v.max() <= 1
    assert abs(u[0].min() - bz_rest()) < 1e-9 and abs(u[0].max() - 1) < 1e-3  # rest state + an excited spot
    assert v[-1].max() > 2 * bz_rest()  # the spot fired: inhibitor built up
    assert np.abs(u - bz_reference(1.0, dt=1e-4)[2]).max() < 1e-3  # halving dt
    _, _, u2, v2 = bz_reference(1.0, points=512, dt=5e-5)
    assert max(np.abs(u - u2[:, ::2]).max(), np.abs(v - v2[:, ::2]).max()) < 1e-3  # halving dx


def test_reference_grids_feed_the_evaluation():
    for eq, fields in [("gray_scott", 2), ("bz", 2), ("ks", 1)]:
        inst = get_task("pinn_pde", equation=eq, horizon=0.5).build(0)
        assert inst.grid.shape == (64 * 26, 2) and inst.reference.shape == (64 * 26, fields)
        assert float(inst.grid[:, 1].max()) == 1.0  # time scaled by the horizon
        assert inst.model.head.out_features == fields
    inst = get_task("pinn_pde", equation="ks2d", horizon=0.5).build(0)
    assert inst.grid.shape == (16 * 16 * 11, 3) and inst.reference.shape == (16 * 16 * 11, 1)
    at_start = inst.grid[:, 2] == 0  # the reference at s = 0 is the initial condition
    assert torch.allclose(inst.reference[at_start, 0], ks2d_initial(inst.grid[at_start, 0], inst.grid[at_start, 1]),
                          atol=1e-6)


# ------------------------------------------------------------------ training

@pytest.mark.parametrize("equation, loss_factor, l2_factor", [
    ("heat_nd", 0.5, 0.5), ("bz", 0.1, 0.85), ("ks", 0.5, 0.6), ("ks2d", 0.6, 0.85)])
def test_adam_lowers_the_residual_loss_and_l2_error(equation, loss_factor, l2_factor):
    res = run("pinn_pde", "adamw", steps=200, eval_every=100, task_options=dict(equation=equation, num_points=64))
    assert res.ok
    (_, loss0), *_, (_, loss1) = res.metrics["eval_loss"]
    (_, l2_0), *_, (_, l2_1) = res.metrics["rel_l2"]
    assert loss1 < loss_factor * loss0 and l2_1 < l2_factor * l2_0, (loss0, loss1, l2_0, l2_1)


# ------------------------------------------------------------------ options

@pytest.mark.parametrize("options, option", [
    (dict(equation="ks3d"), "equation"), (dict(equation="heat_nd", dim=0), "dim"), (dict(dim=65), "dim"),
    (dict(dim=2.0), "dim"), (dict(equation="bz", horizon=-1.0), "horizon"),
    (dict(equation="ks", horizon=float("nan")), "horizon"), (dict(equation="ks2d", horizon=0), "horizon"), (dict(equation="ks", horizon=True), "horizon"),
    (dict(equation="heat2d", horizon=2.0), "horizon"), (dict(equation="heat_nd", horizon=1.0), "horizon"),
])
def test_bad_options_are_refused_naming_option_and_value(options, option):
    with pytest.raises(ValueError) as err:
        get_task("pinn_pde", **options)
    assert str(err.value).startswith(f"pinn_pde: {option}") and repr(options[option]) in str(err.value)


def test_cli_refuses_a_horizon_for_the_heat_equation(capsys, tmp_path):
    argv = ["run", "--task", "pinn_pde", "--optimizer", "adamw", "--steps", "2", "--option", "equation=heat_nd",
            "--option", "horizon=3.0", "--db", str(tmp_path / "runs.db")]
    assert main(argv) == 2
    assert "pinn_pde: horizon applies to ['bz', 'gray_scott', 'ks', 'ks2d'] only" in capsys.readouterr().err
