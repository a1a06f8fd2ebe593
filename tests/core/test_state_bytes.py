"""Optimizer-state bytes: describe()'s figure and the predicted figure equal the tensors actually held."""

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core import ModelBatch
from optimlab.core.state_bytes import held_state_bytes, predicted_state_bytes, state_bytes_per_param
from optimlab.lab.runner import optimizer_state_bytes

NAMES = optimlab.available()


def stepped(name, params_or_groups, steps=2):
    opt = optimlab.create(params_or_groups, name)
    ps = [p for g in opt.param_groups for p in g["params"]]
    hvp = "hvp" in optimlab.describe(name).needs  # Hessian-vector products: the closure keeps the graph
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = sum(((p - 0.3) ** 2).sum() for p in ps)
            if torch.is_grad_enabled():  # a gradient-free (zeroth-order) step may evaluate under no_grad
                loss.backward(create_graph=hvp)
            return loss
        # Gauss–Newton recipes read the outputs: Σ(p − 0.3)² is ½‖f − y‖² for f = √2·p, y = √2·0.3
        closure.batch = ModelBatch(lambda: 2 ** 0.5 * torch.cat([p.reshape(-1) for p in ps]).unsqueeze(0),
                                   torch.full((1, sum(p.numel() for p in ps)), 0.3 * 2 ** 0.5), "half_sse")
        opt.step(closure)
    return opt


@pytest.mark.parametrize("name", NAMES)
def test_describe_figure_is_what_an_8x8_matrix_holds(name):
    desc = optimlab.describe(name)
    w = nn.Parameter(torch.randn(8, 8))
    opt = stepped(name, [{"params": [w], "role": "matrix"}])
    held = held_state_bytes(opt)
    role = "matrix" if "matrix" in desc.roles else next(iter(desc.roles))
    assert held.per_param == desc.roles[role]["state_bytes"] == state_bytes_per_param(name, (8, 8))


@pytest.mark.parametrize("name", ["adamw", "muon", "galore_adamw", "dct_adamw", "osd_adamw", "snsm", "dion"])
def test_predicted_equals_held_on_a_model(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(11, 16), nn.Linear(16, 48), nn.Tanh(), nn.Linear(48, 11))
    opt = optimlab.create(model, name)
    x = torch.randint(0, 11, (8,))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), x).backward()
        opt.step()
    held, pred = held_state_bytes(opt), predicted_state_bytes(opt)
    assert held.total == pred.total == optimizer_state_bytes(opt) > 0
    assert held.by_role == pred.by_role
    assert held.n_params == sum(p.numel() for p in model.parameters())


def test_low_rank_state_is_a_quarter_of_adamw_on_a_tall_matrix():
    """At rank n/4 the projected Adam state is 2·m·r numbers (+ the basis for GaLore, the mask for DCT)."""
    m, n = 256, 64
    adamw = state_bytes_per_param("adamw", (m, n))
    assert adamw == 8.0
    r = n // 4
    assert state_bytes_per_param("galore_adamw", (m, n)) == 4 * (2 * m * r + n * r) / (m * n)
    assert state_bytes_per_param("dct_adamw", (m, n)) == 4 * (2 * m * r + n) / (m * n)
    assert state_bytes_per_param("snsm", (m, n)) == 4 * (m * r + n * r + m) / (m * n)
    assert state_bytes_per_param("dct_adamw", (m, n)) <= 0.3 * adamw


def test_reverse_std_puts_the_basis_on_the_large_side():
    """GaLore's two sides: (2·max + min)·r numbers (std, the paper's) or (max + 2·min)·r (reverse_std); equal on a
    square matrix, where rank n/4 holds 3/8 of AdamW's state whichever side is projected."""
    m, n = 256, 64
    r = n // 4
    rev = state_bytes_per_param("galore_adamw", (m, n), proj_type="reverse_std")
    assert rev == 4 * (m * r + 2 * n * r) / (m * n)
    assert rev < state_bytes_per_param("galore_adamw", (m, n))
    sq = [state_bytes_per_param("galore_adamw", (64, 64), proj_type=t) for t in ("std", "reverse_std")]
    assert sq[0] == sq[1] == 8.0 * 3 / 8


def test_state_bytes_add_counts_total_and_role():
    from optimlab.core.state_bytes import StateBytes

    sb = StateBytes(0, 0)
    sb.add("matrix", 64, 8)
    sb.add("vector", 4, 1)
    sb.add("matrix", 16, 2)
    assert (sb.total, sb.n_params) == (84, 11)
    assert sb.by_role == {"matrix": (80, 10), "vector": (4, 1)}
    assert sb.role_per_param("matrix") == 8.0 and sb.per_param == 84 / 11
