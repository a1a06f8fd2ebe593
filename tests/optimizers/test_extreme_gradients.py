"""Extreme but finite gradients (1e-30, 1e30, 3e38, and a mix) never turn into NaN, for every optimizer.

Every registered optimizer (adding one adds no test code) steps a small model with every role - matrix
(Linear, a 3-D conv kernel), embedding, head, vector, and the fine roles router / gate / down / expert for
the recipes that use them - on gradients whose largest entry is the given scale, then once on ordinary
gradients. It must either raise a ``FloatingPointError`` that names it, or leave every parameter finite and
no NaN in its state. ``±inf`` may appear in state only in the accumulators where torch.optim's own
arithmetic puts it (Adam's ``exp_avg_sq`` of a gradient whose square overflows, SGD's momentum sum), and
for the methods torch has, the result is torch's (``test_matches_torch_at_extreme_scales``).
"""

import re

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core import ModelBatch
from optimlab.core.model_batch import batch_loss

NAMES = optimlab.available()
# max entry of each tensor's gradient; "mixed" cycles huge / tiny / zero over the tensors
SCALES = {"1e-30": 1e-30, "1e30": 1e30, "3e38": 3e38, "mixed": (3e38, 1e-30, 0.0)}
# torch.optim's own results hold inf here: v = β2·v + (1−β2)·g² when g² overflows (Adam; Pion's Adam-type
# moments of its generators), and the heavy-ball / EMA momentum sum of gradients near the top of the range.
# Accumulated squares may saturate at +inf as in torch.optim (Adam's exp_avg_sq, Adagrad's sum, RMSprop's
# square_avg); the step they divide then goes to 0 and the parameters stay finite. Also DoG's Σ‖g‖², the
# AdaGrad-Norm and SANIA accumulators of squares.
TORCH_INF_STATE = re.compile(r"(^|\.)(max_)?exp_avg_sq(_in|_out)?$|^momentum\.momentum_buffer$|"
                             r"^adagrad\.sum$|^rmsprop\.square_avg$|^norm_accumulator\.b_sq$|^[lu]?dog\.G$|"
                             r"^sania\.precond$")


class SwiGLU(nn.Module):
    def __init__(self, d, r):
        super().__init__()
        self.gate_proj = nn.Linear(d, r, bias=False)
        self.up_proj = nn.Linear(d, r, bias=False)
        self.down_proj = nn.Linear(r, d, bias=False)


class Expert(nn.Module):
    def __init__(self, d, r):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, r), nn.Linear(r, d)


class MoE(nn.Module):
    def __init__(self, d, r, n):
        super().__init__()
        self.router = nn.Linear(d, n, bias=False)
        self.experts = nn.ModuleList(Expert(d, r) for _ in range(n))


class Net(nn.Module):
    """Every role, no forward: the gradients are set by hand."""

    def __init__(self, vocab=11, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.fc = nn.Linear(d, 12)
        self.conv = nn.Conv1d(4, 6, 3)
        self.mlp = SwiGLU(d, 16)
        self.moe = MoE(d, 6, 2)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)


def set_grads(model, scale, step, dtype):
    g = torch.Generator().manual_seed(step)
    for i, p in enumerate(model.parameters()):
        x = torch.randn(p.shape, generator=g, dtype=torch.float64)
        s = scale[i % len(scale)] if isinstance(scale, tuple) else scale
        p.grad = (x / x.abs().max() * s).to(dtype)  # largest entry exactly s (before rounding to dtype)


def problems(model, opt):
    bad = []
    for n, p in model.named_parameters():
        if not torch.isfinite(p).all():
            bad.append(f"parameter {n}")
        for k, v in opt.state[p].items():
            v = torch.as_tensor(v)
            if not v.is_floating_point() or torch.isfinite(v).all():
                continue
            if v.isnan().any() or not TORCH_INF_STATE.search(k):
                bad.append(f"state {n}[{k}] ({'NaN' if v.isnan().any() else 'inf'})")
    return bad


def hvp_closure(model, scale, step, dtype):
    """For recipes that take HVPs: f = 1 + Σ⟨G, x − x₀⟩ + ½‖x − x₀‖² at x = x₀, so ∇f = G (set_grads') with a
    graph, and H = I."""
    set_grads(model, scale, step, dtype)
    G = [p.grad for p in model.parameters()]

    def closure():
        loss = torch.ones((), dtype=dtype)
        for p, g in zip(model.parameters(), G):
            p.grad = None
            d = p - p.detach()
            loss = loss + (d * g).sum() + 0.5 * d.square().sum()
        loss.backward(create_graph=True)
        return loss
    return closure


def outputs_closure(model, scale, step, dtype):
    """For recipes that read the model's outputs (Net has no forward): outputs = a fixed random linear map of all
    parameters (4 rows × 3), loss mean ½‖f‖²; the gradients are set by hand (set_grads), as for the others."""
    params = list(model.parameters())
    d = sum(p.numel() for p in params)
    R = (torch.randn(d, 12, generator=torch.Generator().manual_seed(99), dtype=torch.float64) / d ** 0.5).to(dtype)
    targets = torch.zeros(4, 3, dtype=dtype)

    def outputs():
        return (torch.cat([p.reshape(-1) for p in params]) @ R).reshape(4, 3)

    def closure():
        set_grads(model, scale, step, dtype)
        with torch.no_grad():
            return batch_loss("half_sse", outputs(), targets)
    closure.batch = ModelBatch(outputs, targets, "half_sse")
    return closure


def run(name, scale, dtype, steps=2):
    torch.manual_seed(0)
    model = Net().to(dtype)
    opt = optimlab.create(model, name)
    loss = torch.tensor(1.0, dtype=dtype)  # recipes that read the loss (sps, aegd...) get f = 1 from a closure
    hvp = "hvp" in opt.recipe.needs
    outputs = "outputs" in opt.recipe.needs
    try:
        for t in range(steps):
            if hvp or outputs:
                opt.step((hvp_closure if hvp else outputs_closure)(model, scale, t, dtype))
                continue
            set_grads(model, scale, t, dtype)
            opt.step(lambda: loss)
        if hvp or outputs:
            opt.step((hvp_closure if hvp else outputs_closure)(model, 1.0, steps, dtype))
        else:
            set_grads(model, 1.0, steps, dtype)  # and back to ordinary gradients
            opt.step(lambda: loss)
    except FloatingPointError as e:  # the allowed refusal: loud, and naming the optimizer
        assert name in str(e), f"{name}: FloatingPointError does not name the optimizer: {e}"
        return []
    return problems(model, opt)


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("name", NAMES)
def test_extreme_gradients_float32(name, scale):
    bad = run(name, SCALES[scale], torch.float32)
    assert not bad, f"{name} at gradients {scale}: non-finite {bad}"


@pytest.mark.parametrize("scale", ["1e-30", "3e38", "mixed"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["float64", "bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_gradients_other_dtypes(name, dtype, scale):
    bad = run(name, SCALES[scale], dtype)
    assert not bad, f"{name} ({dtype}) at gradients {scale}: non-finite {bad}"


TORCH_PEERS = {
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, fused=True), dict(lr=1e-3, weight_decay=0.01)),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True), dict(lr=1e-3)),
    "amsgrad": (lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, amsgrad=True, fused=True),
                dict(lr=1e-3, weight_decay=0.01)),
    "adamax": (lambda ps: torch.optim.Adamax(ps, lr=2e-3, foreach=False), dict(lr=2e-3)),
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, foreach=False), dict(lr=1e-3, momentum=0.9)),
}


@pytest.mark.parametrize("scale", ["1e-30", "1e30", "3e38"])
@pytest.mark.parametrize("name", list(TORCH_PEERS))
def test_matches_torch_at_extreme_scales(name, scale):
    make_torch, hp = TORCH_PEERS[name]
    torch.manual_seed(0)
    ours = [nn.Parameter(torch.randn(5, 7)), nn.Parameter(torch.randn(7))]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    opt, ref = optimlab.create(ours, name, **hp), make_torch(theirs)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        for a, b in zip(ours, theirs):
            x = torch.randn(a.shape, generator=g, dtype=torch.float64)
            a.grad = (x / x.abs().max() * SCALES[scale]).float()
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        # equal, infinities included: at 3e38 SGD's momentum sum overflows to inf in torch as here
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
        mine = {k.split(".", 1)[1]: v for k, v in opt.state[a].items() if k != "step"}
        for k, v in ref.state[b].items():
            if k != "step":
                torch.testing.assert_close(mine[k], v, rtol=1e-6, atol=0)
