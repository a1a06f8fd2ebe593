"""The non-finite check on CUDA: exact flags (NaN, ±Inf, huge finite values in fp32/bf16/fp64) and the
deferred read (a bad step's fused kernels skip themselves; the next ``step()`` raises naming the parameter).

    PYTHONPATH=src python benchmarks/nonfinite_gpu_check.py

Prints one line per check and "ALL OK" at the end, or raises.
"""

import torch

import optimlab
from optimlab.core import finite


def main() -> None:
    dev = torch.device("cuda")
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        gs = [torch.full((100_000,), 3e38 if dtype != torch.float64 else 1e300, dtype=dtype, device=dev),
              torch.ones(7, dtype=dtype, device=dev)]
        assert finite.Check(gs).bad() is None, dtype
        for bad in (float("nan"), float("inf"), float("-inf")):
            gs[0][54_321] = bad
            c = finite.Check(gs)
            assert c.bad() == 0 and float(c.found[dev]) == 1.0, (dtype, bad)
            gs[0][54_321] = 1.0
        print(f"flag exact on cuda {dtype}", flush=True)
    g = torch.Generator(device=dev).manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(64, 32, device=dev, generator=g)),
          torch.nn.Parameter(torch.randn(32, device=dev, generator=g))]
    opt = optimlab.create([{"params": [ps[0]], "param_names": ["w"], "role": "matrix"},
                           {"params": [ps[1]], "param_names": ["b"], "role": "vector"}], "adamw", lr=0.1)
    for p in ps:
        p.grad = torch.randn_like(p)
    opt.step()
    before = [p.detach().clone() for p in ps]
    ps[1].grad[3] = float("nan")
    opt.step()
    assert opt._pending is not None, "the check should be deferred on CUDA when every chain is fused"
    assert all(torch.equal(a, p) for a, p in zip(before, ps)), "the fused kernel did not skip itself"
    try:
        opt.step()
    except FloatingPointError as err:
        assert "'b'" in str(err) and "previous step" in str(err), err
        print("deferred error:", err, flush=True)
    else:
        raise AssertionError("the deferred check did not raise")
    assert all(opt.state[p]["step"] == 1 for p in ps)
    ps[1].grad[3] = 0.0
    opt.step()
    opt.settle()
    assert all(opt.state[p]["step"] == 2 for p in ps) and all(torch.isfinite(p).all() for p in ps)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    main()
