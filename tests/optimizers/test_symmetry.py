"""The symmetry-compatible stack: parity with the SVD transcription, each role's invariance, training."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import optimlab
from core.test_roles_moe import TinyMoEGPT
from optimlab.core.roles import assign_roles
from optimlab.reference.symmetry import UPDATES, symmetric_step
from optimlab.transforms.symmetry import RowNormalize, one_sided_polar

# (recipe, role) -> the rule of optimlab.reference.symmetry it must equal
RULES = {("symmetry_muon", "embedding"): "row_norm", ("symmetry_muon", "head"): "row_norm",
         ("symmetry_muon", "router"): "centered_row_norm", ("symmetry_muon", "gate"): "hybrid_row",
         ("symmetry_muon", "down"): "hybrid_col", ("symmetry_hybrid", "embedding"): "hybrid_row",
         ("symmetry_hybrid", "router"): "left_spectral"}
SHAPES = [(6, 4), (4, 6), (5, 5), (5, 5), (2, 6, 4)]  # tall, wide, a same-shape pair, a stack of 2 experts


@pytest.mark.parametrize("recipe,role", list(RULES))
def test_matches_svd_transcription(recipe, role):
    g = torch.Generator().manual_seed(0)
    ps = [nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in SHAPES]
    refs = [p.detach().clone() for p in ps]
    states = [[{} for _ in range(p.shape[0])] if p.ndim == 3 else {} for p in ps]  # one state per expert
    rule = RULES[recipe, role]
    hp = dict(lr=0.03, momentum=0.9, weight_decay=0.1, eps=1e-8, **({"alpha": 1.0} if "norm" not in rule else {}))
    opt = optimlab.create([{"params": ps, "role": role, **hp}], recipe)
    assert opt.param_groups[0]["role"] == role
    for _ in range(12):
        for p, r, st in zip(ps, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64) + 0.5 * p.detach()
            p.grad = grad
            for e, (re, se) in enumerate(zip(r, st) if p.ndim == 3 else [(r, st)]):
                symmetric_step(re, grad[e] if p.ndim == 3 else grad, se, rule=rule, lr=0.03, mu=0.9, wd=0.1)
        opt.step()
    for p, r in zip(ps, refs):
        assert ((p.detach() - r).norm() / r.norm()).item() < 1e-10


def update_of(recipe, role, G, **hp):
    """The update ``u`` of one step from zero momentum: ``p ← p − u`` (lr 1, μ 0, λ 0)."""
    p = nn.Parameter(torch.zeros_like(G))
    opt = optimlab.create([{"params": [p], "role": role, "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, **hp}],
                          recipe)
    p.grad = G.clone()
    opt.step()
    return -p.detach()


def perm(n, seed):
    return torch.eye(n, dtype=torch.float64)[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def orth(n, seed):
    return torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]


G = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize("recipe", ["symmetry_muon", "symmetry_hybrid"])
def test_embedding_and_head_left_permutation_right_orthogonal(recipe):
    for role in ("embedding", "head"):
        U = update_of(recipe, role, G)
        P, Q = perm(7, 1), orth(5, 2)
        torch.testing.assert_close(update_of(recipe, role, P @ G @ Q), P @ U @ Q, rtol=1e-9, atol=1e-10)
    U = update_of("symmetry_muon", "embedding", G)
    torch.testing.assert_close(U.norm(dim=1), torch.ones(7, dtype=torch.float64))  # unit ℓ2 rows


@pytest.mark.parametrize("recipe", ["symmetry_muon", "symmetry_hybrid"])
def test_router_expert_permutation_and_shared_shift(recipe):
    U = update_of(recipe, "router", G)
    shift = torch.ones(7, 1, dtype=torch.float64) @ torch.randn(1, 5, dtype=torch.float64)
    torch.testing.assert_close(update_of(recipe, "router", G + shift), U, rtol=1e-9, atol=1e-10)
    P = perm(7, 4)
    torch.testing.assert_close(update_of(recipe, "router", P @ G), P @ U, rtol=1e-9, atol=1e-10)
    if recipe == "symmetry_muon":  # centered row-norm: the centred rows sum to 0, then each has unit norm
        torch.testing.assert_close(U.norm(dim=1), torch.ones(7, dtype=torch.float64))
        C = G - G.mean(0)
        torch.testing.assert_close(C.sum(0), torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(U * C.norm(dim=1, keepdim=True), C, rtol=1e-7, atol=1e-12)
    else:  # left-spectral: no component along the shared shift 1
        torch.testing.assert_close(U.sum(0), torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-8)
    # without centering the shift changes the update: the test above can fail
    plain = update_of("symmetry_muon", "head", G + shift)
    assert (plain - update_of("symmetry_muon", "head", G)).abs().max() > 1e-2


def test_swiglu_gate_rows_and_down_columns_are_the_neurons():
    Gg = torch.randn(8, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # gate/up: (r, d)
    P, Q = perm(8, 6), orth(5, 7)
    Ug = update_of("symmetry_muon", "gate", Gg)
    torch.testing.assert_close(update_of("symmetry_muon", "gate", P @ Gg @ Q), P @ Ug @ Q, rtol=1e-9, atol=1e-10)
    Gd = Gg.T.contiguous()  # down: (d, r), the neurons are the columns
    Ud = update_of("symmetry_muon", "down", Gd)
    torch.testing.assert_close(update_of("symmetry_muon", "down", Q.T @ Gd @ P.T), Q.T @ Ud @ P.T,
                               rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(Ud, Ug.T)  # column-aware on Gᵀ is the transpose of row-aware on G


def test_expert_stack_is_orthogonalized_per_expert():
    """A raw (E, m, n) expert tensor: Muon's polar factor of each expert matrix, not of an (E, m·n) matrix."""
    Gs = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    U = update_of("symmetry_muon", "expert", Gs, ortho_backend="svd", nesterov=False)
    for e in range(3):
        u, _, vh = torch.linalg.svd(Gs[e], full_matrices=False)
        torch.testing.assert_close(U[e], (6 / 4) ** 0.5 * u @ vh, rtol=1e-9, atol=1e-10)


def test_one_sided_polar_is_the_damped_polar_factor():
    g = torch.Generator().manual_seed(8)
    for shape in [(9, 4), (4, 9), (3, 6, 4)]:
        M = torch.randn(*shape, generator=g, dtype=torch.float64)
        for side in ("right", "left"):
            ours = one_sided_polar(M, side, 1e-8, 1.0)
            ref = torch.stack([UPDATES["one_sided"](m, 1e-8, 1.0) for m in M.reshape(-1, *shape[-2:])])
            torch.testing.assert_close(ours.reshape(ref.shape), ref, rtol=1e-9, atol=1e-10)
        P = one_sided_polar(M, "right" if shape[-2] >= shape[-1] else "left", 1e-12, 0.0)
        small = min(shape[-2:])
        gram = P.mT @ P if shape[-2] >= shape[-1] else P @ P.mT
        torch.testing.assert_close(gram, torch.eye(small, dtype=torch.float64).expand_as(gram), rtol=0, atol=1e-8)


def test_bad_construction():
    with pytest.raises(ValueError, match="axis must be one of"):
        RowNormalize("diag")
    with pytest.raises(ValueError, match=r"needs matrices .* 'vector' role"):
        update_of("symmetry_muon", "embedding", torch.ones(3, dtype=torch.float64))


def char_batches(vocab=13, ctx=8, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    while True:  # sequences t, t+k, t+2k, ... (mod vocab): the next token is predictable from the last two
        start, step = torch.randint(vocab, (n, 1), generator=g), torch.randint(1, 4, (n, 1), generator=g)
        seq = (start + step * torch.arange(ctx + 1)) % vocab
        yield seq[:, :-1], seq[:, 1:]


@pytest.mark.parametrize("recipe", ["symmetry_muon", "symmetry_hybrid"])
def test_trains_a_moe_swiglu_gpt_with_every_role(recipe):
    torch.manual_seed(0)
    model = TinyMoEGPT()
    groups = assign_roles(model, fine=True).groups()
    opt = optimlab.create(groups, recipe, ns_dtype="float32", per_role={"embedding": {"lr": 0.05}})
    assert {g["role"] for g in opt.param_groups} == {"matrix", "embedding", "head", "vector", "router", "gate",
                                                     "down", "expert"}
    data = char_batches()
    losses = []
    for _ in range(25):
        x, y = next(data)
        opt.zero_grad()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, f"{recipe}: {first:.3f} -> {last:.3f}"


def test_create_detects_fine_roles_only_for_recipes_that_use_them():
    model = TinyMoEGPT()
    sym = optimlab.create(model, "symmetry_muon", ns_dtype="float32")
    assert {"router", "gate", "down", "expert"} <= {g["role"] for g in sym.param_groups}
    plain = optimlab.create(model, "muon")
    assert not {"router", "gate", "down", "expert"} & {g["role"] for g in plain.param_groups}
    # the same parameters, all routed: nothing lost between the two assignments
    count = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for g in sym.param_groups for p in g["params"]) == count
    assert sum(p.numel() for g in plain.param_groups for p in g["params"]) == count
