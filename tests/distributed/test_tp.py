"""Tensor-parallel layouts (DTensor ``Shard(1)`` column shards, mixed Megatron layouts, FSDP × TP 2-D meshes) on
CPU/gloo: parity with one process, owners via all-to-all of blocks, and Dion's column form (all-reduces of P
and of R's column norms, per arXiv:2504.05295) with every byte counted.

The workers (tp_workers.py) give the DTensor parameters their blocks of the exact one-process gradient, so the
optimizer is isolated: bit-identical where the FSDP2 tests are (even splits), Dion's sharded forms within the
row form's tolerance (a reassociated sum; test_dion_distributed.py states why).

Uneven splits (d=21 over 2 or 4 ranks): not bit-identical after several steps for a reason outside the
layouts: CPU kernels do not give a matrix the same bits in every stack (a one-process Dion step of 4 of 8
21×21 matrices differs from the step of all 8 by ~100 ULP; Muon's bf16 Newton–Schulz turns any last-bit
difference into ~0.4 % of an element). So uneven splits are checked at the first step (bit-identical: the
uneven blocks are assembled and returned exactly) and, for Dion's column form, after 20 steps within its
tolerance and byte for byte.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from dist_workers import launch, make_opt
from test_ddp import _ulps, ulp_misses
from test_dion_distributed import TOL, _rel
from tp_workers import full_state, gpt, step_plain, w_tp

STEPS = 20
EXACT = ["muon", "normuon", "adamw", "dion_owner"]


def _reference(name: str, size: str, steps: int = STEPS) -> tuple[dict, dict]:
    model = gpt(0, size)
    opt = make_opt(model, name)
    step_plain(model, opt, steps, size)
    return {n: p.detach().clone() for n, p in model.named_parameters()}, full_state(opt)


def _exact(results: list, names: list, size: str, steps: int = STEPS) -> None:
    for name in names:
        ref, ref_state = _reference(name, size, steps)
        for rank, res in enumerate(results):
            assert "error" not in res, res.get("tb")
            got = res[name]
            assert got["mode"] == "sharded"
            worst = max(_ulps(got["params"][k], ref[k]) for k in ref)
            assert worst <= 1, f"{name}: rank {rank} is {worst} ULP from one process"
            for k, v in ref_state.items():
                assert _ulps(got["state"][k].float(), v.float()) <= 1, f"{name}: rank {rank} state {k}"


def _all_reduce_bytes(rows: int, world: int, me: int, k: int, r: int) -> int:
    """Bytes rank ``me`` receives in a reduce-scatter + all-gather of ``k`` float32 ``rows × r`` partials."""
    from optimlab.distributed.comm import padded
    from optimlab.distributed.dion import even_blocks

    blocks = even_blocks(rows, world)
    mine = blocks[me][1] - blocks[me][0]
    return (world - 1) * padded(k * mine * r * 4) + sum(padded(k * (hi - lo) * r * 4)
                                                      for q, (lo, hi) in enumerate(blocks) if q != me)


def _grid_bytes(rank: int, fraction: float, steps: int) -> int:
    """Dion's grid form on the 2×2 mesh (rank = 2·row coordinate + column coordinate), even sizes: the maxima
    over all 4 ranks, P's all-reduce over the column group (2 ranks, this rank's m/2 rows), the other row
    block of P (all-gather over the row group), R's all-reduce over the row group (n/2 rows), the other
    column group rank's r sums of squares."""
    from optimlab.distributed.comm import padded
    from optimlab.transforms.lowrank import dion_rank

    ca, cb = divmod(rank, 2)
    total = 0
    for shape, k in _hidden_shapes("even").items():
        m, n = shape
        r = dion_rank(torch.Size(shape), fraction)
        total += 3 * (padded(16 * k) + padded(8 * k))
        total += _all_reduce_bytes(m // 2, 2, cb, k, r) + padded(k * (m // 2) * r * 4)
        total += _all_reduce_bytes(n // 2, 2, ca, k, r) + padded(k * r * 4)
    return steps * total


def _hidden_shapes(size: str) -> dict:
    shapes: dict = {}
    for n, p in gpt(0, size).named_parameters():
        if p.ndim == 2 and n.startswith("blocks."):  # Dion's matrix role: the hidden matrices
            shapes[tuple(p.shape)] = shapes.get(tuple(p.shape), 0) + 1
    return shapes


def _column_bytes(world: int, rank: int, size: str, fraction: float, steps: int) -> int:
    """Bytes rank ``rank`` receives from Dion's column form in ``steps`` steps, every matrix column-sharded:
    per same-shape bucket of ``k`` matrices (m × n, rank r, float32): max|M|, max|G|, max|B| (float64 per
    matrix), P's all-reduce — the others' partials of this rank's block of P's rows (reduce-scatter) and the
    others' summed blocks (all-gather): 2·(N−1)/N·m·r — and the others' r column sums of squares of R. Per
    matrix that is the paper's all-reduce of (m + 1)·r elements, done as reduce-scatter + all-gather."""
    from optimlab.distributed.comm import padded
    from optimlab.distributed.dion import even_blocks
    from optimlab.transforms.lowrank import dion_rank

    total = 0
    for shape, k in _hidden_shapes(size).items():
        m, r = shape[0], dion_rank(torch.Size(shape), fraction)
        blocks = even_blocks(m, world)
        total += (world - 1) * (padded(16 * k) + padded(8 * k))
        mine = blocks[rank][1] - blocks[rank][0]
        total += (world - 1) * padded(k * mine * r * 4)
        total += sum(padded(k * (hi - lo) * r * 4) for q, (lo, hi) in enumerate(blocks) if q != rank)
        total += (world - 1) * padded(k * r * 4)
    return steps * total


def _column_dion(results: list, world: int, size: str, steps: int = STEPS) -> None:
    ref, ref_state = _reference("dion_lowrank", size, steps)
    qs = {k: v for k, v in ref_state.items() if k[2] == "dion.Q"}
    for rank, res in enumerate(results):
        got = res["dion_lowrank"]
        assert _rel(got["params"], ref) < TOL, (rank, _rel(got["params"], ref))
        assert qs and _rel({k: got["state"][k] for k in qs}, qs) < TOL
        assert got["log"] == []  # no whole-matrix Dion call anywhere: partial products only
        assert got["q_placements"] == ["(Shard(dim=0),)"]  # Q sharded by rows, like the columns
        assert got["needed"] == _column_bytes(world, rank, size, 0.25, steps), rank
    for res in results[1:]:  # the replicas' full parameters: the same bits
        assert all(torch.equal(res["dion_lowrank"]["params"][k], results[0]["dion_lowrank"]["params"][k])
                   for k in ref)


@pytest.mark.timeout(420)
def test_column_shards_two_processes_match_one_process(tmp_path):
    """Every matrix Shard(1), vectors replicated with Partial() gradients (redistributed by the optimizer):
    muon, normuon, adamw, Dion's owner mode bit-identical to one process after 20 steps; Dion's column form
    within its tolerance, with every byte counted, about r/n of the owner mode's bytes."""
    names = EXACT + ["dion_lowrank"]
    results = launch(w_tp, 2, tmp_path, names, STEPS, "even", "cols", True)
    _exact(results, EXACT, "even")
    _column_dion(results, 2, "even")
    logs = [[m for call in r["muon"]["log"] for m in call] for r in results]  # each matrix once, on one rank
    assert logs[0] and logs[1] and not set(logs[0]) & set(logs[1])
    assert all(r["adamw"]["needed"] == 0 for r in results)  # elementwise: local blocks, nothing sent
    for r in results:
        assert r["dion_lowrank"]["needed"] / r["dion_owner"]["needed"] < 0.2


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_uneven_column_shards_two_and_four_processes(tmp_path):
    """d=21, vocab 33: columns split 11/10 (2 ranks) and 6/6/6/3 (4 ranks)."""
    for world in (2, 4):
        _exact(launch(w_tp, world, tmp_path, ["muon", "normuon", "adamw"], 1, "odd", "cols"),
               ["muon", "normuon", "adamw"], "odd", 1)
        results = launch(w_tp, world, tmp_path, ["dion_lowrank"], STEPS, "odd", "cols")
        assert all("error" not in r for r in results), results[0].get("tb")
        _column_dion(results, world, "odd")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_megatron_layout_rows_columns_and_replicated_in_one_bucket(tmp_path):
    """q, k, fc Shard(0); attention and MLP proj Shard(1); v and the position embedding replicated (owner-split
    like DDP); vocab-parallel embedding and head. Dion's buckets mix the row form, the column form and owners."""
    names = EXACT + ["dion_lowrank"]
    results = launch(w_tp, 2, tmp_path, names, STEPS, "even", "mixed")
    _exact(results, EXACT, "even")
    ref, _ = _reference("dion_lowrank", "even")
    for r in results:
        assert _rel(r["dion_lowrank"]["params"], ref) < TOL
        assert r["dion_lowrank"]["log"]  # the replicated v matrices: whole, on owners


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fsdp_by_tp_two_by_two_mesh(tmp_path):
    """(Shard(0), Shard(1)) on a 2×2 mesh: 2-D blocks, assembled on owners over all 4 ranks (muon, adamw and
    Dion's owner mode bit-identical); Dion's grid form (the paper's FSDP × TP algorithm) within its tolerance,
    byte for byte, no whole matrix anywhere."""
    names = ["muon", "adamw", "dion_owner", "dion_lowrank"]
    results = launch(w_tp, 4, tmp_path, names, STEPS, "even", "fsdp_tp")
    _exact(results, ["muon", "adamw", "dion_owner"], "even")
    ref, _ = _reference("dion_lowrank", "even")
    for rank, r in enumerate(results):
        got = r["dion_lowrank"]
        assert _rel(got["params"], ref) < TOL, (rank, _rel(got["params"], ref))
        assert got["log"] == [] and got["q_placements"] == ["(Replicate(), Shard(dim=0))"]
        assert got["needed"] == _grid_bytes(rank, 0.25, STEPS), rank
        assert got["needed"] / r["dion_owner"]["needed"] < 0.4
    calls = Counter(m for r in results for call in r["muon"]["log"] for m in call)
    assert len(calls) == 12 and set(calls.values()) == {STEPS}  # each matrix once per step, on one of 4 ranks


def test_layout_kinds_senders_and_refusals():
    from torch.distributed.tensor import Partial, Replicate, Shard

    from optimlab.distributed.layout import Layout, work_dims

    rows = Layout((5, 4), [((0, 3), (0, 4)), ((3, 2), (0, 4))])
    cols = Layout((4, 7), [((0, 4), (0, 2)), ((0, 4), (2, 2)), ((0, 4), (4, 2)), ((0, 4), (6, 1))])
    empty = Layout((4, 3), [((0, 4), (0, 1)), ((0, 4), (1, 1)), ((0, 4), (2, 1)), ((0, 4), (0, 0))])
    rep = Layout((4, 4), [((0, 4), (0, 4))] * 3)
    grid = Layout((4, 4), [((0, 2), (0, 2)), ((0, 2), (2, 2)), ((2, 2), (0, 2)), ((2, 2), (2, 2))])
    assert [x.kind() for x in (rows, cols, empty, rep, grid)] == ["rows", "cols", "cols", "replicated", "grid"]
    assert cols.spans(1) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert torch.equal(cols.block(torch.arange(28).view(4, 7), 3), torch.arange(28).view(4, 7)[:, 6:7])
    # replicated: the owner holds it already, nobody sends; empty blocks send nothing
    assert not any(rep.sender(r, 1) for r in range(3)) and not empty.sender(3, 0)
    assert [grid.sender(r, 2) for r in range(4)] == [True, True, False, True]
    half = Layout((4, 4), [((0, 4), (0, 2)), ((0, 4), (0, 2)), ((0, 4), (2, 2)), ((0, 4), (2, 2))])
    assert [half.sender(r, 1) for r in range(4)] == [False, False, True, False]  # one copy of each block
    for bad in ([((0, 3), (0, 4)), ((2, 2), (0, 4))], [((0, 2), (0, 4)), ((3, 2), (0, 4))]):  # overlap; gap
        with pytest.raises(ValueError, match="do not tile it exactly"):
            Layout((5, 4), bad)
    mesh1, mesh3 = SimpleNamespace(ndim=1), SimpleNamespace(ndim=3)
    p = SimpleNamespace(device_mesh=mesh1, placements=[Partial()], shape=(4, 4))
    with pytest.raises(ValueError, match="not Shard"):
        work_dims(mesh1, [p], "muon")
    assert work_dims(mesh1, [SimpleNamespace(device_mesh=mesh1, placements=[Replicate()], shape=(4,))], "x") == (0,)
    q = SimpleNamespace(device_mesh=mesh3, placements=[Shard(0), Shard(1), Replicate()], shape=(4, 4))
    with pytest.raises(ValueError, match="every dimension of the mesh"):
        work_dims(mesh3, [q], "muon")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dcp_checkpoint_of_column_shards_resumes_on_the_same_layout_and_on_one_process(tmp_path):
    """Saved by 2 TP processes after 10 steps (Dion's Q a Shard(0) DTensor), loaded into a fresh TP model there
    (the same bits as the uninterrupted run) and into one process (plain Q: muon bit-identical to one process
    throughout, Dion within its tolerance)."""
    import warnings

    from tp_workers import load

    names, save_at = ["muon", "dion_lowrank"], 10
    straight = launch(w_tp, 2, tmp_path, names, STEPS, "even", "cols")
    resumed = launch(w_tp, 2, tmp_path, names, STEPS, "even", "cols", False, save_at)
    for name in names:
        for a, b in zip(straight, resumed):
            assert all(torch.equal(a[name]["params"][k], b[name]["params"][k]) for k in a[name]["params"]), name
        model = gpt(1, "even")
        opt = make_opt(model, name)
        with warnings.catch_warnings():  # DCP warns that it runs without a process group
            warnings.simplefilter("ignore")
            load(model, opt, str(tmp_path / f"ckpt_{name}"))
        step_plain(model, opt, STEPS - save_at, "even", start=save_at)
        ref, _ = _reference(name, "even")
        one = {n: p.detach() for n, p in model.named_parameters()}
        if name == "muon":
            assert all(torch.equal(one[k], ref[k]) for k in ref)
        else:
            assert _rel(one, ref) < TOL


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", ["cols", "mixed"])
def test_every_fsdp2_capable_optimizer_on_tensor_parallel_layouts(tmp_path, layout):
    """Every optimizer that runs under FSDP2 runs on column shards and on the Megatron layout, within 1 ULP of one
    process after 3 steps (measured: 0 ULP for all 49)."""
    import optimlab
    from optimlab.distributed import refusal

    from tp_workers import closure_for, w_tp_registry

    names = [n for n in optimlab.available() if refusal(n) is None]
    results = launch(w_tp_registry, 2, tmp_path, names, 3, layout, timeout=840)
    bad = []
    for name in names:
        model = gpt(0, "even")
        opt = make_opt(model, name)
        torch.manual_seed(7)
        for s in range(3):
            opt.step(closure_for(model, None, s, "even"))
        bad += ulp_misses(results, name, {n: p.detach() for n, p in model.named_parameters()})
    assert not bad, "\n".join(map(str, bad))
