"""Distributed Muon on CPU processes (gloo): per-step time and bytes, DDP-redundant vs owner-split vs FSDP2.

For a GPT-like set of hidden matrices (per layer q, k, v, o: d×d; fc: 4d×d; proj: d×4d) and the same
gradients on every rank (what DDP's all-reduce leaves), each of N gloo processes (one thread each) runs
Muon's step:

* ``redundant``: no process group — every rank orthogonalizes every matrix (what DDP does with any
  single-process optimizer; communication: none);
* ``owner``: ``process_group=`` — each matrix on one FLOP-balanced owner, results all-gathered
  (optimlab.distributed.replicated);
* ``fsdp2``: DTensor parameters sharded by rows — shards all-to-all'd to owners and back
  (optimlab.distributed.sharded);
* ``tp``: DTensor parameters sharded by columns (tensor parallel, ``Shard(1)``) — column blocks all-to-all'd
  to owners and back.

Reported per mode and N: median step time (max over ranks), bytes received per rank per step and the
minimum needed (one all-gather of the updates for DDP: the matrices a rank does not own; one all-to-all
round trip for FSDP2), and the largest rank's share of the Newton–Schulz FLOPs (target <= 1/N + 10%).
Projection: from per-matrix NS costs measured here in one process (and, with ``--gpu``, on the GPU in
bf16 for a larger model), the owner-split step on N ranks costs ``max_rank Σ cost(owned) + bytes/bandwidth``
with a stated bandwidth; the redundant step costs ``Σ cost`` whatever N.

    python benchmarks/distributed.py --nprocs 1 2 4 --d 256 --layers 4 --steps 3 --json out.json
    python benchmarks/distributed.py --gpu --project-d 2048 --project-layers 24 --bandwidth-gbs 400
    python benchmarks/distributed.py --nprocs 2 4 --modes --dion --d 256 --layers 2   # Dion: owner vs low-rank
    python benchmarks/distributed.py --nprocs 2 4 --modes fsdp2 tp --d 256 --layers 2  # Muon: rows vs columns
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def gpt_shapes(d: int, layers: int) -> list[tuple[int, int]]:
    return [s for _ in range(layers) for s in [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)]]


def _matrices(d: int, layers: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    shapes = gpt_shapes(d, layers)
    ps = [torch.randn(s, generator=g) * 0.02 for s in shapes]
    gs = [torch.randn(s, generator=g) for s in shapes]
    return ps, gs


def _worker(rank: int, world: int, tmp: str, mode: str, d: int, layers: int, steps: int,
            rank_fraction: float = 0.25) -> None:
    import torch.distributed as dist

    import optimlab

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store_{mode}_{world}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=300))
    ps, gs = _matrices(d, layers)
    sharded = "fsdp2" in mode or "tp" in mode  # tp: tensor-parallel column shards, Shard(1)
    if sharded:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor

        mesh = init_device_mesh("cpu", (world,))
        pl = [Shard(1) if "tp" in mode else Shard(0)]
        ps = [torch.nn.Parameter(distribute_tensor(p, mesh, pl)) for p in ps]
        gs = [distribute_tensor(g, mesh, pl) for g in gs]
    else:
        ps = [torch.nn.Parameter(p) for p in ps]
    if mode.startswith("dion"):  # dion_{owner,lowrank} (DDP), dion_{fsdp2,tp}_{owner,lowrank}
        from optimlab.distributed import distribute

        group = None if sharded else dist.group.WORLD
        opt = optimlab.create([{"params": ps, "role": "matrix"}], "dion", rank_fraction=rank_fraction,
                              process_group=group)
        distribute(opt, group, dion=mode.rsplit("_", 1)[1])
    else:
        opt = optimlab.create([{"params": ps, "role": "matrix"}], "muon",
                              process_group=dist.group.WORLD if mode == "owner" else None)
    times = []
    for s in range(steps + 1):
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        dist.barrier()
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    ex = opt._distributed
    out = {"median_s": statistics.median(times[1:]),
           "bytes": ex.comm.bytes_received / (steps + 1) if ex else 0.0,
           "needed": ex.comm.bytes_needed / (steps + 1) if ex else 0.0,
           "units": ex.matrix_calls / (steps + 1) if ex else float(len(ps))}
    # gloo loopback bandwidth: one 32 MiB all-gather
    if world > 1 and mode == "owner":
        x = torch.zeros(16 * 2 ** 20 // world)
        outb = torch.empty(world * x.numel())
        dist.barrier()
        t0 = time.perf_counter()
        (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(outb, x)
        out["gloo_gbs"] = x.numel() * 4 * (world - 1) / (time.perf_counter() - t0) / 1e9
    every = [None] * world
    dist.all_gather_object(every, out)
    if rank == 0:
        with open(f"{tmp}/out_{mode}_{world}.json", "w") as f:
            json.dump(every, f)
    dist.destroy_process_group()


def run_mode(mode: str, world: int, d: int, layers: int, steps: int, rank_fraction: float = 0.25) -> list[dict]:
    import torch.multiprocessing as mp

    tmp = tempfile.mkdtemp()
    mp.start_processes(_worker, args=(world, tmp, mode, d, layers, steps, rank_fraction), nprocs=world,
                       start_method="spawn")
    with open(f"{tmp}/out_{mode}_{world}.json") as f:
        return json.load(f)


def ns_cost(shape: tuple[int, int], device: str = "cpu", reps: int = 3) -> float:
    """Seconds for Muon's default Newton–Schulz (5 steps, bf16) of one matrix of ``shape``."""
    from optimlab.linalg.orthogonalize import orthogonalize

    X = torch.randn(1, *shape, device=device)
    ts = []
    for _ in range(reps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        orthogonalize(X, "newton_schulz", steps=5, schedule="jordan", dtype=torch.bfloat16)
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts[1:])


def project(shapes: list[tuple[int, int]], cost: dict, world: int, bandwidth: float, elsize: int = 4,
            wire: int = 2) -> dict:
    """Projected owner-split NS step (compute of the busiest rank + communication) vs redundant. Bytes as
    optimlab sends them: bf16 NS results travel in bf16 (``wire`` bytes), FSDP2's outbound momentum shards in
    the parameter dtype (``elsize``); a rank's time is what it receives / ``bandwidth``."""
    from optimlab.distributed import assign_owners, matrix_flops

    owners = assign_owners([matrix_flops(s) for s in shapes], world)
    load = [0.0] * world
    own_bytes = [0] * world
    for s, o in zip(shapes, owners):
        load[o] += cost[s]
        own_bytes[o] += s[0] * s[1] * wire
    total = sum(own_bytes)
    recv = max(total - b for b in own_bytes)  # DDP: every rank receives what it does not own
    # FSDP2, received by rank r: the other ranks' shards of its matrices (elsize), and its rows of the others'
    fsdp = max(sum(s[0] * s[1] * (elsize * (world - 1) / world if o == r else wire / world)
                   for s, o in zip(shapes, owners)) for r in range(world))
    return {"world": world, "redundant_s": sum(cost[s] for s in shapes), "owner_compute_s": max(load),
            "ddp_comm_s": recv / bandwidth, "ddp_step_s": max(load) + recv / bandwidth,
            "fsdp2_comm_s": fsdp / bandwidth, "fsdp2_step_s": max(load) + fsdp / bandwidth}


def dion_bytes(shapes: list[tuple[int, int]], world: int, fraction: float) -> dict:
    """Analytic bytes per rank and step (fp32, rank 0): Dion's low-rank mode (the other ranks' P row blocks,
    R's all-reduce as reduce-scatter + all-gather of row blocks, three float64 maxima per matrix) and the DDP
    owner split (u, M and Q of the matrices a rank does not own)."""
    from optimlab.distributed import assign_owners, matrix_flops
    from optimlab.distributed.dion import even_blocks
    from optimlab.transforms.lowrank import dion_rank

    low = 0
    for m, n in shapes:
        r = dion_rank(torch.Size((m, n)), fraction)
        blocks, nb = even_blocks(m, world), even_blocks(n, world)
        low += sum((hi - lo) * r * 4 for q, (lo, hi) in enumerate(blocks) if q) + (world - 1) * 24
        low += (world - 1) * (nb[0][1] - nb[0][0]) * r * 4 + sum((hi - lo) * r * 4 for lo, hi in nb[1:])
    owners = assign_owners([matrix_flops((m, n), "power_iteration", rank=dion_rank(torch.Size((m, n)), fraction))
                            for m, n in shapes], world)
    own = max(sum((2 * m * n + n * dion_rank(torch.Size((m, n)), fraction)) * 4 + 8
                  for (m, n), o in zip(shapes, owners) if o != q) for q in range(world))
    return {"lowrank": low, "owner": own, "columns": dion_column_bytes(shapes, world, fraction)}


def dion_column_bytes(shapes: list[tuple[int, int]], world: int, fraction: float) -> int:
    """Analytic bytes per rank and step (fp32, rank 0) of Dion's column form (Shard(1) matrices): P's
    all-reduce as reduce-scatter + all-gather of row blocks (``2·(N−1)/N·m·r``), the others' ``r`` column sums
    of squares of R, three float64 maxima per matrix: the paper's all-reduce of ``(m + 1)·r``."""
    from optimlab.distributed.dion import even_blocks
    from optimlab.transforms.lowrank import dion_rank

    total = 0
    for m, n in shapes:
        r = dion_rank(torch.Size((m, n)), fraction)
        blocks = even_blocks(m, world)
        total += (world - 1) * ((blocks[0][1] - blocks[0][0]) * r * 4 + r * 4 + 24)
        total += sum((hi - lo) * r * 4 for lo, hi in blocks[1:])
    return total


def dion_compare(a: argparse.Namespace, report: dict) -> None:
    """Dion's bytes and step time, owner split vs the paper's low-rank power iteration, DDP and FSDP2."""
    shapes = gpt_shapes(a.d, a.layers)
    print(f"\nDion (rank_fraction {a.dion_rank_fraction}): bytes received per rank per step")
    print(f"{'mode':<20}{'N':>3}{'step s':>10}{'MiB recv':>10}{'needed MiB':>12}{'lowrank/owner':>15}"
          f"{'analytic':>10}")
    rows = []
    for world in [n for n in a.nprocs if n > 1]:
        est = dion_bytes(shapes, world, a.dion_rank_fraction)
        got = {}
        for mode in ("dion_owner", "dion_lowrank", "dion_fsdp2_owner", "dion_fsdp2_lowrank", "dion_tp_owner",
                     "dion_tp_lowrank"):
            res = run_mode(mode, world, a.d, a.layers, a.steps, a.dion_rank_fraction)
            step = max(r["median_s"] for r in res)
            recv, need = max(r["bytes"] for r in res), max(r["needed"] for r in res)
            got[mode] = need
            ratio = ""
            if mode.endswith("lowrank"):
                ratio = f"{need / got[mode.replace('lowrank', 'owner')]:.3f}"
            analytic = f"{est['lowrank'] / est['owner']:.3f}" if mode == "dion_lowrank" else \
                f"{est['columns'] / 2**20:.2f} MiB" if mode == "dion_tp_lowrank" else ""
            rows.append({"mode": mode, "world": world, "step_s": step, "bytes": recv, "needed": need})
            print(f"{mode:<20}{world:>3}{step:>10.3f}{recv / 2**20:>10.2f}{need / 2**20:>12.2f}{ratio:>15}"
                  f"{analytic:>10}")
    report["dion"] = {"rank_fraction": a.dion_rank_fraction, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--modes", nargs="*", default=["redundant", "owner", "fsdp2"], help="none: projections only")
    ap.add_argument("--gpu", action="store_true", help="also measure per-matrix NS cost on CUDA for the projection")
    ap.add_argument("--gpu-cost-json", default=os.path.join(os.path.dirname(__file__), "data", "h200_ns_cost.json"),
                    help="per-matrix NS costs measured on a GPU earlier (used when --gpu finds no CUDA)")
    ap.add_argument("--project-d", type=int, default=2048)
    ap.add_argument("--project-layers", type=int, default=24)
    ap.add_argument("--bandwidth-gbs", type=float, default=400.0, help="stated GPU interconnect GB/s per rank")
    ap.add_argument("--gloo-gbs", type=float, default=None, help="gloo bandwidth for the CPU projection "
                    "(default: measured by the owner runs)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dion", action="store_true", help="also compare Dion's owner split with its low-rank mode")
    ap.add_argument("--dion-rank-fraction", type=float, default=0.25)
    a = ap.parse_args(argv)
    from optimlab.distributed import assign_owners, matrix_flops

    torch.set_num_threads(1)
    shapes = gpt_shapes(a.d, a.layers)
    flops = [matrix_flops(s) for s in shapes]
    total_bytes = sum(s[0] * s[1] * 4 for s in shapes)
    report: dict = {"d": a.d, "layers": a.layers, "matrices": len(shapes), "update_bytes": total_bytes,
                    "torch": torch.__version__, "cpu_count": os.cpu_count(), "measured": [], "projection": {}}
    print(f"GPT-like set d={a.d}, {a.layers} layers: {len(shapes)} matrices, {total_bytes / 2**20:.1f} MiB of "
          f"fp32 updates, {sum(flops) / 1e9:.1f} GFLOP of NS per step; torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, 1 thread per process")
    print(f"{'mode':<10}{'N':>3}{'step s':>10}{'x redund.':>10}{'MiB recv':>10}{'/ needed':>10}"
          f"{'max NS share':>14}{'1/N+10%':>9}")
    base = {}
    for world in a.nprocs:
        for mode in a.modes:
            if world == 1 and mode != "redundant":
                continue
            res = run_mode(mode, world, a.d, a.layers, a.steps)
            step = max(r["median_s"] for r in res)
            if mode == "redundant":
                base[world] = step
            owners = assign_owners(flops, world) if mode != "redundant" else [0] * len(flops)
            share = max(sum(f for f, o in zip(flops, owners) if o == r) for r in range(world)) / sum(flops)
            recv = max(r["bytes"] for r in res)
            need = max(r["needed"] for r in res)
            row = {"mode": mode, "world": world, "step_s": step, "bytes": recv, "needed": need,
                   "ns_share": share, "gloo_gbs": res[0].get("gloo_gbs")}
            report["measured"].append(row)
            ratio = f"{recv / need:.3f}" if need else "-"
            speed = f"{base[world] / step:.2f}" if world in base else "-"
            print(f"{mode:<10}{world:>3}{step:>10.3f}{speed:>10}{recv / 2**20:>10.2f}{ratio:>10}"
                  f"{share:>14.3f}{1 / world + 0.1:>9.3f}")
    if a.dion:
        dion_compare(a, report)
    cpu_cost = {s: ns_cost(s) for s in set(shapes)}
    gbs = a.gloo_gbs or next((r["gloo_gbs"] for r in report["measured"] if r.get("gloo_gbs")), 1.0)
    report["cpu_cost_s"] = {f"{s[0]}x{s[1]}": c for s, c in cpu_cost.items()}
    report["projection"]["cpu"] = [project(shapes, cpu_cost, n, gbs * 1e9) for n in a.nprocs]
    print(f"\nprojection from per-matrix costs measured here (CPU, 1 thread) and gloo at {gbs:.2f} GB/s:")
    for p in report["projection"]["cpu"]:
        print(f"  N={p['world']}: redundant {p['redundant_s']:.3f} s, owner-split {p['ddp_step_s']:.3f} s "
              f"(compute {p['owner_compute_s']:.3f} + all-gather {p['ddp_comm_s']:.3f})")
    big = gpt_shapes(a.project_d, a.project_layers)
    gpu_cost = None
    if a.gpu and torch.cuda.is_available():
        gpu_cost = {s: ns_cost(s, "cuda", reps=10) for s in set(big)}
        report["gpu_name"] = torch.cuda.get_device_name()
    elif a.gpu_cost_json and os.path.exists(a.gpu_cost_json):
        with open(a.gpu_cost_json) as f:
            saved = json.load(f)
        known = {tuple(int(x) for x in k.split("x")): v for k, v in saved["cost_s"].items()}
        if all(s in known for s in set(big)):
            gpu_cost = {s: known[s] for s in set(big)}
            report["gpu_name"] = f"{saved['gpu']} (measured earlier: {os.path.basename(a.gpu_cost_json)})"
    if gpu_cost is not None:
        report["gpu_cost_s"] = {f"{s[0]}x{s[1]}": c for s, c in gpu_cost.items()}
        rows = [project(big, gpu_cost, n, a.bandwidth_gbs * 1e9) for n in (1, 2, 4, 8, 16, 32, 64)]
        report["projection"]["gpu"] = rows
        print(f"\nprojection for d={a.project_d}, {a.project_layers} layers from NS costs measured on "
              f"{report['gpu_name']} (bf16, one matrix at a time) at a stated {a.bandwidth_gbs:g} GB/s:")
        for p in rows:
            print(f"  N={p['world']:>2}: redundant {p['redundant_s'] * 1e3:7.2f} ms, owner-split DDP "
                  f"{p['ddp_step_s'] * 1e3:7.2f} ms (compute {p['owner_compute_s'] * 1e3:.2f} + comm "
                  f"{p['ddp_comm_s'] * 1e3:.2f}), FSDP2 {p['fsdp2_step_s'] * 1e3:7.2f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
