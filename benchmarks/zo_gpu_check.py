"""GPU check of the zeroth-order recipes: exact restore, no .grad, training, CUDA peak memory vs forward."""
import json, os, sys
import torch
from torch import nn
import optimlab

dev = "cuda"
torch.manual_seed(0)
out = {}
model = nn.Sequential(nn.Linear(1000, 1000), nn.Tanh(), nn.Linear(1000, 10)).to(dev)
x, y = torch.randn(32, 1000, device=dev), torch.randint(0, 10, (32,), device=dev)
closure = lambda: nn.functional.cross_entropy(model(x), y)
before = [p.detach().clone() for p in model.parameters()]
opt = optimlab.create(model, "zo_sgd", lr=0.0, q=4)
for _ in range(3):
    opt.step(closure)
out["restore_bit_identical"] = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
out["no_grad"] = all(p.grad is None for p in model.parameters())
del before, opt
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
with torch.no_grad():
    closure()
torch.cuda.synchronize(); out["forward_peak_extra"] = torch.cuda.max_memory_allocated() - base
opt = optimlab.create(model, "zo_sgd", lr=1e-3)
opt.step(closure)
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
opt.step(closure)
torch.cuda.synchronize(); out["zo_step_peak_extra"] = torch.cuda.max_memory_allocated() - base
out["param_bytes"] = sum(p.numel() * 4 for p in model.parameters())
# training on GPU: each recipe lowers a small classifier's loss
for name, lr in [("zo_sgd", 0.1), ("zo_sgdm", 0.01), ("zo_adam", 0.03), ("zo_spider", 0.05), ("zo_frank_wolfe", 1.0)]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10)).to(dev)
    xx, yy = torch.randn(256, 64, device=dev), torch.randint(0, 10, (256,), device=dev)
    cl = lambda: nn.functional.cross_entropy(m(xx), yy)
    kw = {"radius": 20.0} if name == "zo_frank_wolfe" else {"q": 4} if name != "zo_spider" else {}
    o = optimlab.create(m, name, lr=lr, **kw)
    with torch.no_grad(): b = float(cl())
    for _ in range(150): o.step(cl)
    with torch.no_grad(): out[f"{name}_loss"] = [b, float(cl())]
print(json.dumps(out))
