"""Issue 15 (helper wp5b): tubal, group-word and student-teacher tasks; empirical NTK and RK4 flows."""
from __future__ import annotations

import math

import pytest
import torch

from optimlab.lab.tasks import get_task


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- tubal

def test_t_product_identity_transpose_and_fourier_rank():
    from optimlab.lab.tasks.tubal import t_product, t_transpose, tubal_singular_values

    g = _gen()
    a, b = torch.randn(4, 3, 5, generator=g, dtype=torch.float64), torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    eye = torch.zeros(3, 3, 5, dtype=torch.float64)
    eye[:, :, 0] = torch.eye(3)
    assert torch.allclose(t_product(a, eye), a, atol=1e-12)
    assert torch.allclose(t_transpose(t_product(a, b)), t_product(t_transpose(b), t_transpose(a)), atol=1e-12)
    # the block-circulant definition: C[:, :, l] = Σ_j A[:, :, j] B[:, :, (l − j) mod k]
    circ = torch.stack([sum(a[:, :, j] @ b[:, :, (l - j) % 5] for j in range(5)) for l in range(5)], dim=2)
    assert torch.allclose(t_product(a, b), circ, atol=1e-12)
    u = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    sv = tubal_singular_values(t_product(u, t_transpose(u)))
    assert sv.shape == (5, 6) and float(sv[:, 2:].max()) < 1e-10 * float(sv.max())  # tubal rank 2


def test_tubal_task_truth_is_normalized_and_loss_vanishes_at_the_truth():
    inst = get_task("tubal_sensing", measurements=60).build(3)
    from optimlab.lab.tasks.tubal import tubal_singular_values

    assert abs(float(tubal_singular_values(inst.truth).max()) - 1.0) < 1e-5
    m = inst.evaluate()
    assert m["eval_loss"] > 0.99 and 0 < m["extra_sv_ratio"] <= 1  # tiny init: X ≈ 0
    a, y = inst.batch(0)
    assert a.shape == (60, 500) and torch.allclose(a @ inst.truth.reshape(-1), y)
    with pytest.raises(ValueError, match="rank"):
        get_task("tubal_sensing", rank=11)


# ---------------------------------------------------------------- groups

def test_group_tables_are_latin_squares_with_identity_first():
    from optimlab.lab.tasks.groups import group_elements, word_table

    assert [len(group_elements(g)) for g in ("S3", "S4", "A4", "A5")] == [6, 24, 12, 60]
    for group in ("S3", "S4", "A4"):
        t = word_table(group, "ab")
        n = t.shape[0]
        assert torch.equal(t[0], torch.arange(n)) and torch.equal(t[:, 0], torch.arange(n))
        assert torch.equal(t.sort(1).values, torch.arange(n).expand(n, n))
        assert torch.equal(t.sort(0).values, torch.arange(n)[:, None].expand(n, n))
    s3 = word_table("S3", "ab")
    assert not torch.equal(s3, s3.T)  # non-abelian
    comm = word_table("S4", "abAB")
    assert torch.all(comm[0] == 0) and torch.all(comm.diagonal() == 0)  # [e, b] = [a, a] = e
    conj = word_table("S4", "abA")
    assert torch.equal(conj[:, 0], torch.zeros(24, dtype=torch.int64))  # a e a⁻¹ = e


def test_group_words_task_splits_half_of_s4():
    task = get_task("group_words")
    assert task.p == 24
    inst = task.build(0)
    a, b, c = inst.batch(0)
    assert a.shape == (288,) and inst.test_idx.numel() == 288
    assert inst.evaluate()["test_accuracy"] < 0.2
    with pytest.raises(ValueError, match="word"):
        get_task("group_words", word="abc")


def test_effective_rank_counts_equal_neurons():
    from optimlab.lab.claims.group_words import effective_rank
    from optimlab.lab.tasks.modular import PairMLP

    model = PairMLP(5, 3, 8)
    with torch.no_grad():
        model.tok_emb.weight.copy_(torch.eye(5, 3))
        model.hidden.weight.fill_(1.0)
        model.head.weight.fill_(1.0)
    assert abs(effective_rank(model) - 8) < 1e-9
    with torch.no_grad():
        model.head.weight[:, 2:] = 0.0
    assert abs(effective_rank(model) - 2) < 1e-9


# ---------------------------------------------------------------- student–teacher, curl descent

def test_curl_masks_flip_the_incoming_updates_of_rho_width_neurons():
    from optimlab.lab.tasks.student_teacher import apply_masks, curl_masks

    inst = get_task("student_teacher", n_train=50, n_test=20).build(0)
    model = inst.model
    assert torch.all(curl_masks(model, 0.0, 0)["hidden.weight"] == 1)
    masks = curl_masks(model, 0.5, 0)
    rows = masks["hidden.weight"][:, 0]
    assert int((rows == -1).sum()) == 10 and torch.all(masks["hidden.weight"] == rows[:, None])
    assert torch.all(masks["head.weight"] == 1)
    inst.loss(model, inst.batch(0)).backward()
    grad = model.hidden.weight.grad.clone()
    apply_masks(model, masks)
    assert torch.equal(model.hidden.weight.grad, grad * rows[:, None])
    # with every hidden neuron flipped and the readout frozen, one small step raises the loss
    flipped = curl_masks(model, 1.0, 0)
    flipped["head.weight"] = torch.zeros_like(model.head.weight)
    before = float(inst.loss(model, inst.batch(0)).detach())
    model.zero_grad()
    inst.loss(model, inst.batch(0)).backward()
    apply_masks(model, flipped)
    with torch.no_grad():
        for p in model.parameters():
            p -= 1e-2 * p.grad
    assert float(inst.loss(model, inst.batch(0)).detach()) > before


def test_critical_rho_split():
    from optimlab.lab.claims.curl import critical_rho

    assert critical_rho([1, 1.1, 1.5, 20, 30, 40]) == 0.2
    assert critical_rho([1, 1.1, 1.5, 1.2, 30, 40]) == 0.3
    assert math.isnan(critical_rho([1, 20, 30, 40, 50, 60]))  # only ρ = 0 on the stable side
    assert math.isnan(critical_rho([1, 1.0, 1.0, 1.0, 1.0, 1.0]))  # never destabilized
    assert math.isnan(critical_rho([1, 1.0, 30, 1.0, 30, 30]))  # not a split


# ---------------------------------------------------------------- empirical NTK

def test_empirical_ntk_is_the_jacobian_gram_matrix():
    from optimlab.diagnostics import empirical_ntk, relative_variance

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    x = torch.randn(5, 4, generator=_gen(), dtype=torch.float64)
    rows = []
    for i in range(5):
        net.zero_grad()
        net(x[i:i + 1]).sum().backward()
        rows.append(torch.cat([(p.grad / (p.shape[1] if p.dim() == 2 else 1) ** 0.5).flatten() for p in net.parameters()]))
    jac = torch.stack(rows)
    assert torch.allclose(empirical_ntk(net, x, scaling="fan_in"), jac @ jac.T, atol=1e-12)
    plain = empirical_ntk(net, x)
    assert plain.shape == (5, 5) and torch.allclose(plain, plain.T)
    multi = torch.nn.Linear(4, 3).double()
    k = empirical_ntk(multi, x)
    assert k.shape == (5, 5, 3, 3)
    # a linear layer's NTK: (xᵀx' + 1)·I
    assert torch.allclose(k[1, 2], (x[1] @ x[2] + 1) * torch.eye(3, dtype=torch.float64), atol=1e-12)
    stack = torch.stack([plain, plain, plain])
    assert relative_variance(stack) == 0.0
    assert relative_variance(torch.stack([plain, 3 * plain])) == pytest.approx(2 * 1.0 / 4.0)  # var 2, mean² 4


def test_orthogonal_init_is_orthogonal_and_variance_matched():
    from optimlab.lab.claims.ntk_depth import tanh_mlp

    net = tanh_mlp(16, 2, "orthogonal", _gen())
    w = net[2].weight
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)
    head = net[-1].weight
    assert abs(float(head.detach().norm()) - 1.0) < 1e-5  # one unit row: Σ w² = 1 = n · (1/n)


# ---------------------------------------------------------------- RK4 flows

def test_rk4_and_flows_on_a_quadratic():
    from optimlab.diagnostics import flat_loss, gd_step, gradient_flow, modified_flow, rk4

    a = torch.diag(torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64))
    model = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))

    def loss_fn(m, batch):
        w = m.weight.reshape(-1)
        return 0.5 * w @ batch @ w

    f, theta0 = flat_loss(model, loss_fn, a)
    assert torch.equal(theta0, model.weight.detach().reshape(-1))
    exact = torch.linalg.matrix_exp(-0.3 * a) @ theta0
    assert torch.allclose(rk4(gradient_flow(f), theta0, 0.3, 30), exact, atol=1e-8)
    h = 0.05
    field = modified_flow(f, h)(theta0)
    assert torch.allclose(field, -(a @ theta0 + 0.5 * h * a @ a @ theta0), atol=1e-12)
    errs = []
    for step in (0.02, 0.01):
        gd = gd_step(f, theta0, step)
        errs.append((gd - rk4(modified_flow(f, step), theta0, step, 8)).norm().item())
    assert 6.0 < errs[0] / errs[1] < 10.0  # O(h³): halving h divides the error by ≈ 8
    with pytest.raises(ValueError):
        rk4(gradient_flow(f), theta0, 1.0, 0)
