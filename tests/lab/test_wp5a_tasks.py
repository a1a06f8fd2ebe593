"""Issue 15 (helper wp5a): the phase-retrieval, robust-sensing, river-valley and bigram tasks, the model-based
methods against their reference transcription, the Moreau-envelope measure and the ReLU convex program."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optimlab.lab import model_based as mb
from optimlab.lab import relu_convex as rc
from optimlab.lab.tasks import get_task
from optimlab.reference import model_based as ref


def test_phase_retrieval_truth_fits_the_clean_measurements_and_only_them():
    inst = get_task("phase_retrieval", dim=10, num_measurements=80, corruption=0.25).build(3)
    assert int(inst.corrupted.sum()) == 20
    with torch.no_grad():
        inst.model.x.copy_(-inst.signal)  # the sign is not identifiable
    ev = inst.evaluate()
    assert ev["dist"] == 0.0 and ev["clean_loss"] < 1e-6
    resid = (inst.measurements @ inst.signal).pow(2) - inst.observations
    assert ev["eval_loss"] == pytest.approx(float(resid.abs().mean()), rel=1e-5)
    assert ev["eval_loss"] > 0.1  # the outliers are not fit


def test_robust_sensing_outliers_are_a_fraction_and_l1_at_the_truth_is_their_mean_size():
    task = get_task("robust_matrix_sensing", n=8, rank=2, width=2, num_measurements=100, outlier_fraction=0.3,
                    outlier_scale=100.0)
    inst = task.build(0)
    assert int(inst.outliers.sum()) == 30
    u = torch.linalg.eigh(inst.target_matrix.double())
    root = (u.eigenvectors[:, -2:] * u.eigenvalues[-2:].clamp(min=0).sqrt()).float()
    with torch.no_grad():
        inst.model.left.weight.copy_(root)
    batch = inst.batch(0)
    clean = inst.measurements @ inst.target_matrix.reshape(-1)
    expected = (inst.observations - clean).abs().mean()
    assert float(inst.loss(inst.model, batch).detach()) == pytest.approx(float(expected), rel=1e-4)
    assert float(expected) > 10 * float(inst.target_matrix.norm())  # gross outliers
    assert inst.evaluate()["rel_error"] < 1e-5


def test_river_valley_gradient_is_exact_plus_the_batch_noise():
    task = get_task("river_valley", dim=4, stiffness=10.0, noise=2.0)
    inst = task.build(0)
    model = inst.model
    batch = inst.batch(5)
    loss = inst.loss(model, batch)
    grads = torch.autograd.grad(loss, [model.river, model.mountain])
    exact = torch.autograd.grad(sum(inst.parts(model)), [model.river, model.mountain])
    noise = torch.cat([g - e for g, e in zip(grads, exact)])
    assert torch.allclose(noise, 2.0 / 2.0 * batch[0], atol=1e-6)  # noise / sqrt(dim) = 1
    assert inst.batch(5)[0].equal(batch[0]) and not inst.batch(6)[0].equal(batch[0])
    ev = inst.evaluate()
    assert ev["eval_loss"] == pytest.approx(ev["river_loss"] + ev["mountain_loss"])


def test_bigram_excess_loss_is_zero_at_the_true_logits():
    inst = get_task("bigram_lm", vocab=12).build(1)
    pi, p = inst.stationary, inst.transitions
    assert torch.allclose(pi @ p, pi, atol=1e-12) and float(pi.sum()) == pytest.approx(1.0)
    assert inst.evaluate()["excess_loss"] > 0.1  # the near-zero init table predicts about uniform
    with torch.no_grad():
        inst.model.table.copy_(p.log().float())
    assert abs(inst.evaluate()["excess_loss"]) < 1e-5


@pytest.mark.parametrize("method,oracle", [("prox_subgradient", ref.prox_subgradient_ref),
                                           ("prox_linear", ref.prox_linear_ref),
                                           ("prox_point", ref.prox_point_ref)])
def test_model_based_steps_match_the_reference_transcription(method, oracle):
    inst = get_task("phase_retrieval", dim=6, num_measurements=40).build(0)
    a, b = inst.measurements.double(), inst.observations.double()
    x = inst.model.x.detach().double()
    xr = x.numpy().copy()
    for t in range(12):
        i, eta = (5 * t) % 40, (0.002, 0.05, 1.0)[t % 3]  # short, medium and long steps
        x = mb.model_based_step(method, x, a[i], b[i], eta)
        xr = oracle(xr, a[i].numpy(), float(b[i]), eta)
        assert np.abs(x.numpy() - xr).max() < 1e-7 * (1 + np.abs(xr).max()), (method, t)


def test_moreau_measure_vanishes_at_the_truth_and_its_prox_is_a_minimizer():
    inst = get_task("phase_retrieval", dim=5, num_measurements=60, corruption=0.0).build(0)
    a, b = inst.measurements.double().numpy(), inst.observations.double().numpy()
    val, _ = mb.moreau_stationarity(a, b, inst.signal.double().numpy())
    assert val < 1e-5
    x = inst.model.x.detach().double().numpy()
    rho = mb.weak_convexity(a)
    lam = 1 / (2 * rho)
    val, y = mb.moreau_stationarity(a, b, x)
    phi = lambda z: np.abs((a @ z) ** 2 - b).mean() + ((z - x) ** 2).sum() / (2 * lam)  # noqa: E731
    rng = np.random.default_rng(0)
    assert all(phi(y) <= phi(y + 1e-3 * rng.standard_normal(5)) + 1e-9 for _ in range(20))
    assert val == pytest.approx(np.linalg.norm(x - y) / lam) and val > 0.1


def test_relu_convex_program_is_certified_and_a_floor_for_any_network():
    rng = np.random.default_rng(0)
    x = np.hstack([rng.uniform(-1, 1, (6, 2)), np.ones((6, 1))])
    y = rng.standard_normal(6)
    pats = rc.activation_patterns(x)
    dense = rc.activation_patterns(x, samples=200_000, seed=1)
    assert {tuple(p) for p in pats} == {tuple(p) for p in dense}
    sol = rc.solve(x, y, 0.05, pats)
    assert sol.gap < 1e-9 and sol.objective < 0.5 * float(y @ y)
    w, a = rc.network_from_solution(sol)
    assert rc.network_objective(w, a, x, y, 0.05) == pytest.approx(sol.objective, abs=1e-9)
    for _ in range(20):  # random networks never beat the convex optimum
        w, a = rng.standard_normal((8, 3)), rng.standard_normal(8)
        assert rc.network_objective(w, a, x, y, 0.05) >= sol.lower_bound - 1e-12


def test_relu_convex_projection_is_onto_the_cone():
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((1, 5, 3))
    for _ in range(20):
        z = rng.standard_normal((1, 3))
        p = rc._project_cones(z, rows)
        assert (rows[0] @ p[0] >= -1e-10).all()
        # projection optimality: z − p is in the polar cone and orthogonal to p
        assert abs(float((z - p)[0] @ p[0])) < 1e-10
        for _ in range(20):
            q = rng.standard_normal(3)
            if (rows[0] @ q >= 0).all():
                assert float((z - p)[0] @ q) <= 1e-10


def test_pinn_suite_heat2d_exact_solution_has_zero_loss_and_gray_scott_reference_is_sane():
    from torch import nn

    from optimlab.lab.tasks.pinn_suite import gray_scott_reference, heat2d_exact

    inst = get_task("pinn_pde", equation="heat2d", frequency=2, num_points=64).build(0)

    class Exact(nn.Module):
        def forward(self, p):
            return heat2d_exact(p, 2, inst.task.diffusivity)[:, None]

    assert float(inst.loss(Exact(), inst.batch(0)).detach()) < 1e-8
    assert float(inst.loss(inst.model, inst.batch(0)).detach()) > 1e-2
    x, t, u, v = gray_scott_reference(1.0, points=64, saves=5)
    g = np.exp(-((x - 0.5) / 0.1) ** 2)
    assert np.allclose(u[0], 1 - 0.5 * g) and np.allclose(v[0], 0.25 * g) and t[-1] == 1.0
    assert (u >= 0).all() and (u <= 1).all() and (v >= 0).all() and not np.allclose(v[-1], v[0])
