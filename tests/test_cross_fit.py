"""Cross-fitted AdamW / Sophia-H / Shampoo (optimlab.cross_fit): each step equals the literal transcription fed
g_A for the numerator and g_B for the statistics; one microbatch gives the plain optimizer; the closure contract;
training on a lab task."""

import pytest
import torch
from torch import nn

import optimlab
from optimlab.cross_fit import cross_fit, microbatch_closure
from optimlab.reference import cross_fit as ref
from optimlab.transforms.hessian import probe

STEPS = 5


def _data(step, n_micro=4, size=6):
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(n_micro, size, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n_micro, size, 4, generator=g, dtype=torch.float64)
    return [(x[i], y[i]) for i in range(n_micro)]


def _init():
    g = torch.Generator().manual_seed(7)
    return (torch.randn(4, 3, generator=g, dtype=torch.float64) * 0.5,
            torch.randn(4, generator=g, dtype=torch.float64) * 0.1)


def _loss(w, b, mb):
    x, y = mb
    out = torch.tanh(x @ w.T + b)  # non-linear: the Hessian depends on the batch and the point
    return ((out - y) ** 2).mean()


def _group_loss(w, b, group):
    return sum(_loss(w, b, mb) for mb in group) / len(group)


def _grads(w, b, group, create_graph=False):
    w = w.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    gw, gb = torch.autograd.grad(_group_loss(w, b, group), (w, b), create_graph=create_graph)
    return gw, gb, w, b


def _run_ours(base, n_micro=4, **hp):
    w0, b0 = _init()
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    opt = optimlab.create([w, b], cross_fit(base), **hp)
    for t in range(STEPS):
        opt.step(microbatch_closure(opt, lambda mb: _loss(w, b, mb), _data(t, n_micro)))
    return w.detach(), b.detach(), opt


def _run_plain(name, n_micro=1, **hp):
    w0, b0 = _init()
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    opt = optimlab.create([w, b], name, **hp)
    graph = "hvp" in optimlab.describe(name).needs
    for t in range(STEPS):
        mb = _data(t, n_micro)

        def closure(mb=mb):
            opt.zero_grad()
            loss = _group_loss(w, b, mb)
            loss.backward(create_graph=graph)
            return loss

        if optimlab.describe(name).needs:
            opt.step(closure)
        else:
            closure()
            opt.step()
    return w.detach(), b.detach()


def test_adamw_cf_equals_the_literal_rule():
    hp = dict(lr=0.05, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1)
    ours_w, ours_b, opt = _run_ours("adamw", **hp)
    w, b = _init()
    sw, sb = {}, {}
    for t in range(STEPS):
        mbs = _data(t)
        ga_w, ga_b, _, _ = _grads(w, b, mbs[0::2])
        gb_w, gb_b, _, _ = _grads(w, b, mbs[1::2])
        ref.adamw_cf_step(w, ga_w, gb_w, sw, **hp)
        ref.adamw_cf_step(b, ga_b, gb_b, sb, **hp)
    torch.testing.assert_close(ours_w, w, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_b, b, rtol=1e-12, atol=1e-13)
    assert opt.closure_evals == 2 * STEPS  # group A by the step, group B by the pre-pass


def test_sophia_h_cf_equals_the_literal_rule():
    hp = dict(lr=0.05, betas=(0.9, 0.95), rho=0.05, eps=1e-12, update_period=2, weight_decay=0.1, seed=3)
    ours_w, ours_b, _ = _run_ours("sophia_h", **hp)
    w, b = _init()
    sw, sb = {}, {}
    kw = {k: v for k, v in hp.items() if k != "seed"}
    for t in range(STEPS):
        mbs = _data(t)
        ga_w, ga_b, _, _ = _grads(w, b, mbs[0::2])
        gw, gbb, wl, bl = _grads(w, b, mbs[1::2], create_graph=True)
        zw, zb = probe(w, 3, t + 1, 0, "gaussian"), probe(b, 3, t + 1, 1, "gaussian")
        hw, hb = torch.autograd.grad((gw, gbb), (wl, bl), (zw, zb))  # one HVP over both parameters, as the step
        ref.sophia_h_cf_step(w, ga_w, lambda z: hw, zw, sw, **kw)
        ref.sophia_h_cf_step(b, ga_b, lambda z: hb, zb, sb, **kw)
    torch.testing.assert_close(ours_w, w, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_b, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("grafting", ["adam", "none"])
def test_shampoo_cf_equals_the_literal_rule(grafting):
    hp = dict(lr=0.05, betas=(0.8, 0.9), matrix_eps=1e-6, eps=1e-8, precondition_frequency=2, grafting=grafting,
              weight_decay=0.1)
    ours_w, ours_b, _ = _run_ours("shampoo", **hp)
    w, b = _init()
    sw, sb = {}, {}
    for t in range(STEPS):
        mbs = _data(t)
        ga_w, ga_b, _, _ = _grads(w, b, mbs[0::2])
        gb_w, gb_b, _, _ = _grads(w, b, mbs[1::2])
        ref.shampoo_cf_step(w, ga_w, gb_w, sw, lr=0.05, betas=(0.8, 0.9), matrix_eps=1e-6, eps=1e-8, k=2,
                            grafting=grafting, weight_decay=0.1)
        ref.adamw_cf_step(b, ga_b, gb_b, sb, lr=0.05, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1)  # vectors: AdamW
    torch.testing.assert_close(ours_w, w, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours_b, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("base, hp", [
    ("adamw", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),
    ("sophia_h", dict(lr=0.05, rho=0.05, update_period=2, seed=1)),
    ("shampoo", dict(lr=0.05, precondition_frequency=1, matrix_eps=1e-6)),
])
def test_one_microbatch_is_the_plain_optimizer(base, hp):
    ours_w, ours_b, _ = _run_ours(base, n_micro=1, **hp)
    w, b = _run_plain(base, n_micro=1, **hp)
    torch.testing.assert_close(ours_w, w, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_b, b, rtol=1e-12, atol=1e-13)


def test_cross_fitting_changes_the_step():
    """With two groups the update differs from AdamW on the whole batch (the statistics really come from B)."""
    ours_w, _, _ = _run_ours("adamw", lr=0.05)
    plain_w, _ = _run_plain("adamw", n_micro=4, lr=0.05)
    assert (ours_w - plain_w).abs().max() > 1e-4


def test_a_plain_closure_is_refused_with_how_to_build_one():
    w = nn.Parameter(torch.ones(3, 2))
    opt = optimlab.create([w], cross_fit("adamw"))

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(TypeError, match="microbatch_closure"):
        opt.step(closure)
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    assert not opt.state or all(s.get("step", 0) == 0 for s in opt.state.values())


def test_bad_bases_and_empty_batches():
    with pytest.raises(ValueError, match="no Adam-moments"):
        cross_fit("sgd")
    with pytest.raises(ValueError, match="unknown|not registered|available"):
        cross_fit("no_such_optimizer")
    w = nn.Parameter(torch.ones(2))
    opt = optimlab.create([w], cross_fit("adamw"))
    with pytest.raises(ValueError, match="at least one"):
        microbatch_closure(opt, lambda mb: w.sum(), [])


def test_ratio_clip_bounds_a_coordinate_that_group_b_does_not_see():
    """Coordinate 1 gets gradient from group A only: unclipped its first step is lr·g_A/ε; with ratio_clip c it
    is exactly lr·c (the sign of g_A)."""
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    micro = [torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)]
    for clip, expected in ((0.0, 0.1 * 1.0 / 1e-8), (3.0, 0.1 * 3.0)):
        with torch.no_grad():
            w.zero_()
        opt = optimlab.create([w], cross_fit("adamw"), lr=0.1, weight_decay=0.0, ratio_clip=clip)
        opt.step(microbatch_closure(opt, lambda x: -(w * x).sum(), micro))
        assert float(w[1]) == pytest.approx(expected, rel=1e-6)
        assert float(w[0]) == pytest.approx(0.1, rel=1e-6)  # seen by both groups: Adam's unit step


@pytest.mark.parametrize("base, hp", [("adamw", dict(lr=3e-3, ratio_clip=10.0)), ("sophia_h", dict(lr=3e-3)),
                                      ("shampoo", dict(lr=3e-3, ratio_clip=10.0))])
def test_trains_on_digits(base, hp):
    from optimlab.lab.tasks import get_task

    inst = get_task("digits_mlp").build(0)
    model = inst.model
    before = inst.evaluate()["eval_loss"]
    opt = optimlab.create(list(model.parameters()), cross_fit(base), **hp)
    for step in range(40):
        x, y = inst.batch(step)[:2]
        micro = list(zip(x.chunk(4), y.chunk(4)))
        opt.step(microbatch_closure(opt, lambda mb: inst.loss(model, mb), micro))
    after = inst.evaluate()["eval_loss"]
    assert after < 0.5 * before, (before, after)


def test_the_docs_example_runs(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "cross_fit.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/cross_fit.md", "exec"), {"__name__": "__docs__"})
    loss = float(re.search(r"group-A loss ([\d.]+)", capsys.readouterr().out).group(1))
    assert loss < 1.0  # unit-variance targets: the model's initial loss is ≈ 1.1


@pytest.mark.parametrize("base, hp", [("adamw", dict(lr=0.05)), ("sophia_h", dict(lr=0.05, update_period=2)),
                                      ("shampoo", dict(lr=0.05, precondition_frequency=3))])
def test_state_dict_round_trip_resumes_bit_identically(base, hp):
    def make():
        w0, b0 = _init()
        w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
        return w, b, optimlab.create([w, b], cross_fit(base), **hp)

    def steps(w, b, opt, ts):
        for t in ts:
            opt.step(microbatch_closure(opt, lambda mb: _loss(w, b, mb), _data(t)))

    w, b, opt = make()
    steps(w, b, opt, range(4))
    w2, b2, opt2 = make()
    steps(w2, b2, opt2, range(2))
    saved = opt2.state_dict()
    params = (w2.detach().clone(), b2.detach().clone())
    w3, b3, opt3 = make()
    with torch.no_grad():
        w3.copy_(params[0])
        b3.copy_(params[1])
    opt3.load_state_dict(saved)
    steps(w3, b3, opt3, range(2, 4))
    assert torch.equal(w, w3) and torch.equal(b, b3)


@pytest.mark.parametrize("base", ["adamw", "sophia_h", "shampoo"])
@pytest.mark.parametrize("scale", [0.0, 1e30])
def test_zero_and_huge_gradients_give_no_nan(base, scale):
    w = nn.Parameter(torch.ones(4, 3))
    opt = optimlab.create([w], cross_fit(base), lr=1e-3, ratio_clip=1.0) if base != "sophia_h" else \
        optimlab.create([w], cross_fit(base), lr=1e-3)
    micro = [torch.full((3,), scale), torch.full((3,), scale * 0.5)]
    for _ in range(3):
        opt.step(microbatch_closure(opt, lambda x: (w @ x).sum() + 0.0 * (w * w).sum(), micro))
    assert torch.isfinite(w).all()
