"""Train the lab's character LM on several CPU processes: DDP with owner-split Muon, or FSDP2.

    torchrun --nproc_per_node 2 examples/distributed_char_lm.py --steps 100            # DDP
    torchrun --nproc_per_node 2 examples/distributed_char_lm.py --fsdp2 --steps 100    # FSDP2 (fully_shard)
    python examples/distributed_char_lm.py --nproc 2 --steps 100                       # no torchrun: spawns

DDP: every rank holds the model; optimlab's Muon, given the process group, orthogonalizes each hidden matrix
on one rank only and all-gathers the results. FSDP2: parameters are DTensors sharded by rows; optimlab
detects them, runs AdamW/momentum on the local shards and sends each matrix's shards to its owner rank for
Newton–Schulz (all-to-all), and back. ``--ckpt DIR`` saves a DCP checkpoint at the end (reshardable: load it
on any number of processes). Rank 0 prints the loss every 25 steps and the validation loss at the end.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

import torch
import torch.distributed as dist

import optimlab
from optimlab.lab.tasks.char_lm import CharLM


def train(args: argparse.Namespace) -> float:
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    task = CharLM(d=args.d, n_layers=2, n_heads=4, context=64, batch_size=8 * world, corpus_chars=200_000)
    inst = task.build(seed=0)  # the same model and data on every rank
    model = inst.model
    if args.fsdp2:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        # DTensor parameters: detected, nothing to pass
        opt = optimlab.create(model, "muon", lr=0.02, **inst.role_hints)
        net = model
    else:
        # replicated parameters: opt in by passing the process group
        opt = optimlab.create(model, "muon", lr=0.02, process_group=dist.group.WORLD, **inst.role_hints)
        net = torch.nn.parallel.DistributedDataParallel(model)
    for step in range(args.steps):
        x, y = inst.batch(step)
        mine = slice(rank * 8, (rank + 1) * 8)  # this rank's share of the global batch
        loss = inst.loss(net, (x[mine], y[mine]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 and rank == 0:
            print(f"step {step:4d}  loss {loss.item():.3f}", flush=True)
    with torch.no_grad():
        result = inst.evaluate(net)
    if rank == 0:
        ex = opt._distributed
        print(f"eval_loss {float(result['eval_loss']):.3f} after {args.steps} steps on {world} processes "
              f"({ex.mode}: this rank computed {ex.matrix_calls} of the matrix updates, received "
              f"{ex.comm.bytes_received / 2**20:.1f} MiB)", flush=True)
    if args.ckpt:
        import torch.distributed.checkpoint as dcp

        from optimlab.distributed import checkpoint as ockpt

        dcp.save({"model": model.state_dict(), "optim": ockpt.state_dict(opt)}, checkpoint_id=args.ckpt)
    return float(result["eval_loss"])


def _spawned(rank: int, world: int, args: argparse.Namespace, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    main_worker(args)


def main_worker(args: argparse.Namespace) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    try:
        train(args)
    finally:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--fsdp2", action="store_true")
    ap.add_argument("--ckpt", default=None, help="directory for a DCP checkpoint at the end")
    ap.add_argument("--nproc", type=int, default=2, help="processes to spawn when not under torchrun")
    ap.add_argument("--port", type=int, default=29517)
    args = ap.parse_args()
    if "RANK" in os.environ:  # under torchrun
        main_worker(args)
    else:
        import torch.multiprocessing as mp

        mp.spawn(_spawned, args=(args.nproc, args, args.port), nprocs=args.nproc)


if __name__ == "__main__":
    main()
