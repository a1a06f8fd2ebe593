"""CUDA checks for every registered optimizer (run on a GPU machine; never part of ``make test``).

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu-check.json

For each name in ``optimlab.available()``: a small transformer-like model (embedding, 2 hidden matrices,
LayerNorm, head) is built on CPU and on CUDA from the same seed, trained for 8 steps on the same data, in
fp32 and (CUDA only) bf16 parameters. Reported per optimizer: whether every step ran, whether all
parameters stayed finite, the relative distance ‖θ_cuda − θ_cpu‖/‖θ_cpu − θ_0‖ after 8 fp32 steps (same
rule on different kernels: small, not zero), and the bf16 run's finiteness. Recipes that need a closure
get one. Then ``torch._dynamo.explain`` counts graph breaks of ``opt.step`` for a few optimizers on CUDA.
"""

import argparse
import json
import traceback

import torch
from torch import nn

import optimlab


class Tiny(nn.Module):
    def __init__(self, vocab=64, d=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.w1 = nn.Linear(d, 2 * d)
        self.w2 = nn.Linear(2 * d, d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.w2(torch.relu(self.w1(h)))
        return self.head(self.norm(h))


def data(device):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 64, (8, 16), generator=g)
    return x.to(device), x.roll(1, dims=1).to(device)


def train(name, device, dtype, steps=8):
    torch.manual_seed(0)
    m = Tiny().to(device=device, dtype=dtype)
    theta0 = torch.cat([p.detach().float().flatten().cpu() for p in m.parameters()])
    opt = optimlab.create(m, name)
    needs = optimlab.describe(name).needs & {"loss", "reevaluate", "hvp", "jvp", "value"}
    x, y = data(device)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(x).float().flatten(0, 1), y.flatten())
        if loss.requires_grad:  # zeroth-order recipes call the closure under no_grad
            loss.backward(create_graph="hvp" in needs)
        return loss

    closure.outputs = lambda: m(x)  # for recipes that take Jacobian-vector products of the outputs

    for _ in range(steps):
        if needs:
            opt.step(closure)
        else:
            closure()
            opt.step()
    theta = torch.cat([p.detach().float().flatten().cpu() for p in m.parameters()])
    return theta0, theta


def check_all(names):
    out = {}
    for name in names:
        rec = {}
        try:
            t0, cpu = train(name, "cpu", torch.float32)
            _, gpu = train(name, "cuda", torch.float32)
            rec["fp32_finite"] = bool(gpu.isfinite().all())
            rec["rel_dist_cuda_cpu"] = float((gpu - cpu).norm() / (cpu - t0).norm().clamp_min(1e-30))
            _, b = train(name, "cuda", torch.bfloat16)
            rec["bf16_finite"] = bool(b.isfinite().all())
            rec["bf16_rel_dist"] = float((b - cpu).norm() / (cpu - t0).norm().clamp_min(1e-30))
        except Exception as e:  # report, do not stop: the point is the list
            rec["error"] = f"{type(e).__name__}: {e}"[:400]
            rec["trace"] = traceback.format_exc()[-800:]
        out[name] = rec
        print(name, json.dumps({k: v for k, v in rec.items() if k != "trace"}), flush=True)
    return out


def graph_breaks(names):
    out = {}
    for name in names:
        torch._dynamo.reset()
        m = Tiny().cuda()
        for p in m.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        opt = optimlab.create(m, name)
        try:
            ex = torch._dynamo.explain(opt.step)()
            out[name] = {"graph_breaks": ex.graph_break_count,
                         "reasons": [str(r.reason)[:200] for r in ex.break_reasons]}
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        print("explain", name, json.dumps(out[name]), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-check.json")
    ap.add_argument("--names", nargs="*", default=None)
    ap.add_argument("--explain", nargs="*", default=["adamw", "muon", "lion", "sgd"])
    args = ap.parse_args()
    names = args.names or optimlab.available()
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "optimizers": check_all(names), "explain": graph_breaks(args.explain)}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    bad = [n for n, r in res["optimizers"].items() if "error" in r or not r.get("fp32_finite")]
    print(f"{len(names)} optimizers, {len(bad)} failing: {bad}")


if __name__ == "__main__":
    main()
