"""Muon: parity with torch.optim.Muon on 2-D weights, and what torch cannot do (conv, batching, aliasing)."""

import pytest
import torch
from torch import nn

import optimlab
from models import CNN


def weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(32, 16), (32, 32), (32, 32), (8, 32), (64, 32)]  # square, tall, wide; a same-shape pair
    return [nn.Parameter(torch.randn(*s, generator=g) / s[1] ** 0.5) for s in shapes]


def loss_fn(ws, x):
    h = x
    for w in ws[:4]:
        h = torch.tanh(h @ w.T) if w.shape[1] == h.shape[1] else h
    return (h ** 2).mean() + (ws[4] @ ws[1]).pow(2).mean()


def train(ws, opt, steps=30):
    g = torch.Generator().manual_seed(5)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(ws, torch.randn(16, 16, generator=g)).backward()
        opt.step()


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_muon(adjust, nesterov):
    """Both see the same 30 gradients (so bf16 rounding is not amplified by the loss landscape);
    the parameters' total movement agrees to bf16 precision."""
    ref, ours = weights(), weights()
    start = weights()
    t = torch.optim.Muon(ref, lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=nesterov, adjust_lr_fn=adjust)
    o = optimlab.create(ours, "muon", lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=nesterov,
                        ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, ns_dtype="bfloat16",
                        adjust_lr_fn=adjust, eps=1e-7)
    assert [g["role"] for g in o.param_groups] == ["matrix"]
    g = torch.Generator().manual_seed(5)
    for _ in range(30):
        grads = [torch.randn(w.shape, generator=g) for w in ref]
        for ws, opt in ((ref, t), (ours, o)):
            for w, gr in zip(ws, grads):
                w.grad = gr.clone()
            opt.step()
    for a, b, s0 in zip(ref, ours, start):
        rel = ((a - b).norm() / (a - s0).norm()).item()
        assert rel < 4e-3, f"relative difference of the movement {rel:.2e}"


def test_first_step_equals_torch_to_bf16_rounding():
    ref, ours = weights(), weights()
    t = torch.optim.Muon(ref, lr=0.02, weight_decay=0.0)
    o = optimlab.create(ours, "muon", lr=0.02, weight_decay=0.0, ns_coefficients="jordan")
    for ws, opt in ((ref, t), (ours, o)):
        loss_fn(ws, torch.ones(16, 16)).backward()
        opt.step()
    start = weights()
    for a, b, s in zip(ref, ours, start):
        da, db = a - s, b - s
        assert ((da - db).abs().max() / da.abs().max()).item() < 2 ** -7  # one bf16 ulp of the step


def test_bf16_params_do_not_corrupt_momentum():
    """torch.optim.Muon with bf16 params and nesterov=False normalises its own momentum buffer in place."""
    w = nn.Parameter(torch.randn(64, 32).bfloat16())
    g = torch.randn(64, 32).bfloat16()
    opt = optimlab.create([w], "muon", nesterov=False)
    w.grad = g.clone()
    opt.step()
    buf = opt.state[w]["momentum.momentum_buffer"]
    assert torch.allclose(buf.float(), (0.05 * g).float(), rtol=1e-2)  # (1 - 0.95) * g, not normalised


def test_conv_kernels_are_orthogonalized_flattened():
    model = CNN()
    opt = optimlab.create(model, "muon", lr=0.1, weight_decay=0.0, ns_coefficients="polar_express",
                          ns_dtype="float32", ns_steps=10, momentum=0.0, nesterov=False)
    model.conv2.weight.grad = torch.randn_like(model.conv2.weight)
    before = model.conv2.weight.detach().clone()
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    opt.step()
    step = (before - model.conv2.weight.detach()).reshape(8, -1) / 0.1  # scale sqrt(max(1, 8/36)) = 1
    s = torch.linalg.svdvals(step)
    assert s.max() < 1.05 and s.min() > 0.9, s


def test_svd_backend_is_exact_polar_factor():
    w = nn.Parameter(torch.zeros(12, 6))
    opt = optimlab.create([w], "muon", lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False,
                          ortho_backend="svd", adjust_lr_fn="none")
    w.grad = torch.randn(12, 6)
    opt.step()
    u, _, vh = torch.linalg.svd(w.grad, full_matrices=False)
    torch.testing.assert_close(-w.detach(), u @ vh, atol=1e-5, rtol=1e-5)


def test_same_shape_bucket_equals_separate_matrices():
    a, b = weights(), weights()
    opt_a = optimlab.create(a, "muon", ns_dtype="float32")
    opt_b = [optimlab.create([w], "muon", ns_dtype="float32") for w in b]
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(w.shape, generator=g) for w in a]
    for ws in (a, b):
        for w, gr in zip(ws, grads):
            w.grad = gr.clone()
    opt_a.step()
    for o in opt_b:
        o.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
