"""Projected optimizers (GaLore, DCT, OSD, SNSM): parity with literal transcriptions, with pytorch_optimizer's
GaLore and AdamWSN, checkpoint round trips across basis refreshes, and the projector kernels."""

import copy
import math

import pytest
import torch
from torch import nn

import optimlab
from optimlab.linalg.lowrank import subspace_distance
from optimlab.linalg.projectors import dct_matrix, dct_select, osd_basis_grad, power_basis, svd_basis
from optimlab.reference.projected import dct_ii, dct_step, galore_step, osd_step, snsm_step

F64 = torch.float64
SHAPES = [(10, 6), (5, 9), (10, 6), (4, 2, 3)]  # tall, wide, a second tall one (same bucket), a 3-D kernel


def params(shapes, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=g, dtype=dtype) / math.sqrt(s[-1])) for s in shapes]


def rank_of(p, frac):
    m, n = p.shape[0], p[0].numel()
    return max(1, min(min(m, n), math.ceil(frac * min(m, n) - 1e-9)))


def run_parity(name, ref, hp, ref_hp, steps=10, frac=0.5, shapes=SHAPES):
    ours = params(shapes)
    refs = [p.detach().clone().reshape(p.shape[0], -1) for p in ours]
    states = [{} for _ in ours]
    frac_hp = {} if name == "adamw_sn" else {"rank_fraction": frac}
    opt = optimlab.create([{"params": ours, "role": "matrix"}], name, **frac_hp, **hp)
    g = torch.Generator().manual_seed(1)
    for t in range(1, steps + 1):
        for p, w, st in zip(ours, refs, states):
            grad = torch.randn(p.shape, generator=g, dtype=F64) + 0.5 * p.detach()
            p.grad = grad
            ref(w, grad.reshape(w.shape).clone(), st, t, r=rank_of(p, frac), **ref_hp)
        opt.step()
    return max(((p.detach().reshape(w.shape) - w).norm() / w.norm()).item() for p, w in zip(ours, refs))


CASES = {
    "galore_adamw": (galore_step, dict(lr=0.05, weight_decay=0.1, update_proj_gap=3, proj_scale=0.5),
                     dict(lr=0.05, wd=0.1, T=3, alpha=0.5)),
    "dct_adamw": (dct_step, dict(lr=0.05, weight_decay=0.1, update_proj_gap=3, proj_scale=0.5),
                  dict(lr=0.05, wd=0.1, T=3, alpha=0.5)),
    "osd_adamw": (osd_step, dict(lr=0.05, weight_decay=0.1, proj_scale=0.5, proj_lr=0.05),
                  dict(lr=0.05, wd=0.1, alpha=0.5, proj_lr=0.05)),
    # the reference code decays after the step (torch's AdamW before): compared without decay
    "snsm": (snsm_step, dict(lr=0.05, update_proj_gap=3), dict(lr=0.05, T=3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name):
    ref, hp, ref_hp = CASES[name]
    assert run_parity(name, ref, hp, ref_hp) < 1e-10
    # not vacuous: another refresh gap / projector lr / scale is caught
    wrong = dict(ref_hp, **({"proj_lr": 0.01} if name == "osd_adamw" else {"T": 4}))
    assert run_parity(name, ref, hp, wrong) > 1e-6


def test_galore_reverse_std_matches_reference():
    """proj_type='reverse_std' (GaLore's reference projector's other side): a left basis on tall matrices, a
    right one on wide ones; the inner state has the small side; the std reference is caught."""
    hp = dict(lr=0.05, weight_decay=0.1, update_proj_gap=3, proj_scale=0.5, proj_type="reverse_std")
    ref_hp = dict(lr=0.05, wd=0.1, T=3, alpha=0.5)
    assert run_parity("galore_adamw", galore_step, hp, dict(ref_hp, reverse=True)) < 1e-10
    assert run_parity("galore_adamw", galore_step, hp, ref_hp) > 1e-6
    ps = params([(10, 6), (5, 9)])
    opt = optimlab.create([{"params": ps, "role": "matrix"}], "galore_adamw", rank_fraction=0.5,
                          proj_type="reverse_std")
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    assert [(tuple(opt.state[p]["galore.adam.exp_avg"].shape), tuple(opt.state[p]["galore.basis"].shape))
            for p in opt.param_groups[0]["params"]] == [((3, 6), (10, 3)), ((5, 3), (9, 3))]


def test_adamw_sn_matches_reference():
    def ref(w, g, st, t, r, **kw):
        snsm_step(w, g, st, t, r=None, T=1, **kw)

    assert run_parity("adamw_sn", ref, dict(lr=0.05, weight_decay=0.0), dict(lr=0.05), frac=1.0,
                      shapes=[(10, 6), (5, 9)]) < 1e-10


def peer_params(shapes):
    ours = params(shapes, dtype=torch.float32)
    return ours, [nn.Parameter(p.detach().clone()) for p in ours]


def peer_run(ours, theirs, opt, peer, steps=8):
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=g) + 0.5 * a.detach()
            b.grad = a.grad.clone()
        opt.step()
        peer.step()
    return max(((a - b).norm() / b.norm()).item() for a, b in zip(ours, theirs))


def test_galore_matches_pytorch_optimizer():
    """pytorch_optimizer's GaLore (refresh at steps 1, T, 2T: equal to ours for T = 1, every step a new
    SVD basis with the Adam state carried); its ε is added before the bias correction: ε tiny here."""
    po = pytest.importorskip("pytorch_optimizer")
    ours, theirs = peer_params([(12, 8), (8, 11)])
    opt = optimlab.create(ours, "galore_adamw", lr=0.02, weight_decay=0.0, eps=1e-30, rank_fraction=0.5,
                          update_proj_gap=1, proj_scale=0.25)
    peer = po.GaLore([{"params": theirs, "rank": 4, "update_proj_gap": 1, "scale": 0.25,
                       "projection_type": "std"}], lr=0.02, eps=1e-30)
    assert peer_run(ours, theirs, opt, peer) < 1e-5
    assert [tuple(opt.state[p]["galore.adam.exp_avg"].shape) for p in ours] == [(12, 4), (4, 11)]


def test_galore_reverse_std_matches_pytorch_optimizer():
    po = pytest.importorskip("pytorch_optimizer")
    ours, theirs = peer_params([(12, 8), (8, 11)])
    opt = optimlab.create(ours, "galore_adamw", lr=0.02, weight_decay=0.0, eps=1e-30, rank_fraction=0.5,
                          update_proj_gap=1, proj_scale=0.25, proj_type="reverse_std")
    peer = po.GaLore([{"params": theirs, "rank": 4, "update_proj_gap": 1, "scale": 0.25,
                       "projection_type": "reverse_std"}], lr=0.02, eps=1e-30)
    assert peer_run(ours, theirs, opt, peer) < 1e-5
    assert [tuple(opt.state[p]["galore.adam.exp_avg"].shape) for p in ours] == [(4, 8), (8, 4)]


def test_subset_norm_matches_pytorch_optimizer():
    """AdamWSN with subsets of n contiguous entries = the rows of a tall matrix; SNSM at full rank without a
    refresh equals it too (P Pᵀ = I: the subspace momentum is the full momentum)."""
    po = pytest.importorskip("pytorch_optimizer")
    for name, extra in (("adamw_sn", {}), ("snsm", dict(rank_fraction=1.0, update_proj_gap=1000))):
        ours, theirs = peer_params([(12, 8), (9, 8)])
        opt = optimlab.create(ours, name, lr=0.01, weight_decay=0.0, eps=1e-8, **extra)
        peer = po.AdamWSN([{"params": theirs, "sn": True}], lr=0.01, eps=1e-8, subset_size=8)
        assert peer_run(ours, theirs, opt, peer) < 1e-5, name


def round_trip(name, **hp):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    opt = optimlab.create(model, name, update_proj_gap=3, **hp)
    x, y = torch.randn(32, 6), torch.randn(32, 3)

    def train(m, o, k):
        for _ in range(k):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
            x.mul_(1.01)

    train(model, opt, 4)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    x0 = x.clone()
    train(model, opt, 5)  # steps 5..9: refreshes at 7
    clone = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    clone.load_state_dict(saved_model)
    opt2 = optimlab.create(clone, name, update_proj_gap=3, **hp)
    opt2.load_state_dict(saved_opt)
    x.copy_(x0)
    train(clone, opt2, 5)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name", ["galore_adamw", "dct_adamw", "osd_adamw", "snsm", "galore_lion"])
def test_round_trip_across_refresh_is_bit_identical(name):
    round_trip(name)


@pytest.mark.parametrize("name", ["galore_adamw", "dct_adamw"])
def test_reverse_std_round_trip(name):
    round_trip(name, proj_type="reverse_std")


def test_warm_started_power_refresh_round_trip_and_tracks_svd():
    round_trip("galore_adamw", proj_iters=2)
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(40, 12, generator=g, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=F64))
    X = (U @ torch.diag(torch.logspace(0, -2, 12, dtype=F64)) @ V.T)[None]
    exact = svd_basis(X, 3, False)
    start = torch.linalg.qr(exact + 0.3 * torch.randn(1, 12, 3, generator=g, dtype=F64))[0]
    d0 = subspace_distance(exact, start).item()
    d = subspace_distance(exact, power_basis(X, start, 4)).item()
    assert d < 0.05 * d0


def test_dct_kernels():
    C = dct_matrix(16, F64, torch.device("cpu"))
    torch.testing.assert_close(C.T @ C, torch.eye(16, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(C, dct_ii(16))
    # a gradient whose rows live on DCT columns {2, 5, 11} selects exactly those
    A = torch.randn(1, 30, 3, dtype=F64)
    X = A @ C[:, [2, 5, 11]].T
    assert sorted(dct_select(X, 3)[0].tolist()) == [2, 5, 11]


def test_osd_gradient_is_autograd_gradient():
    X = torch.randn(2, 9, 5, dtype=F64)
    Q = torch.randn(2, 5, 2, dtype=F64, requires_grad=True)
    Xh = X / torch.linalg.matrix_norm(X, keepdim=True)
    loss = ((Xh @ Q @ Q.mT - Xh) ** 2).sum()
    loss.backward()
    torch.testing.assert_close(osd_basis_grad(X, Q.detach()), Q.grad)
    assert torch.equal(osd_basis_grad(torch.zeros(1, 4, 3), torch.randn(1, 3, 2)), torch.zeros(1, 3, 2))


def test_inner_state_has_the_projected_shape_and_vectors_are_refused():
    w = nn.Parameter(torch.randn(32, 8))
    opt = optimlab.create([w], "dct_adamw", rank_fraction=0.25)
    w.grad = torch.randn(32, 8)
    opt.step()
    st = opt.state[w]
    assert st["dct.adam.exp_avg"].shape == (32, 2) and st["dct.columns"].sum().item() == 2
    v = nn.Parameter(torch.randn(5))
    opt = optimlab.create([{"params": [v], "role": "matrix"}], "galore_adamw")
    v.grad = torch.randn(5)
    with pytest.raises(ValueError, match="matrix parameters"):
        opt.step()


def test_any_inner_chain_full_rank_projected_muon_is_muon():
    """Muon's chain inside the projector: at full rank with a fixed orthogonal basis Q, polar(X Q) Qᵀ =
    polar(X) and the momentum of X Q is the momentum of X times Q, so the step is Muon's."""
    from optimlab.core.engine import ChainOptimizer
    from optimlab.core.transform import chain
    from optimlab.optimizers.muon import muon
    from optimlab.transforms import DecoupledDecay, EMAMomentum, Orthogonalize, ScaleByShape
    from optimlab.transforms.projected import Projected, SVDProjector

    inner = [EMAMomentum(), Orthogonalize(), ScaleByShape()]
    recipe = muon().replace("projected_muon", chains={"matrix": chain(Projected("galore", SVDProjector(), inner),
                                                                      DecoupledDecay())})
    hp = dict(lr=0.02, momentum=0.9, weight_decay=0.1, ortho_backend="svd")
    ours, theirs = params([(10, 6), (5, 9)]), None
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    opt = ChainOptimizer([{"params": ours, "role": "matrix", **hp, "rank_fraction": 1.0, "proj_scale": 1.0,
                           "update_proj_gap": 1000}], recipe)
    ref = optimlab.create([{"params": theirs, "role": "matrix"}], "muon", **hp)
    g = torch.Generator().manual_seed(5)
    for _ in range(6):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=g, dtype=F64)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert opt.state[ours[0]]["galore.momentum.momentum_buffer"].shape == (10, 6)
