"""``optimlab run --nproc 2``: a lab task trained with DDP on 2 CPU processes, stored once by rank 0."""

from __future__ import annotations

import pytest

from optimlab.cli import main
from optimlab.lab.runner import run
from optimlab.lab.store import RunStore

OPTIONS = {"d": 32, "corpus_chars": 20000, "batch_size": 8, "eval_batches": 2}
STEPS = 6


@pytest.mark.timeout(420)
def test_run_nproc_two_trains_with_ddp_and_stores_one_run(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    argv = ["run", "--task", "char_lm", "--optimizer", "adamw", "--steps", str(STEPS), "--no-progress",
            "--db", db, "--option", *[f"{k}={v}" for k, v in OPTIONS.items()]]
    assert main([*argv, "--nproc", "2"]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "eval_loss" in out
    store = RunStore(db)
    try:
        rows = store.find_runs()
        assert len(rows) == 1, rows  # rank 0 alone wrote to the store
        row = rows[0]
        assert row["status"] == "finished" and row["hparams"]["nproc"] == 2
        metrics = store.metrics(row["id"])
        assert [s for s, _ in metrics["loss"]] == list(range(1, STEPS + 1))
    finally:
        store.close()
    # the same training as one process on the whole batch: DDP averages the two halves' gradients (which
    # differs from the whole batch's only by rounding), so the evaluation agrees to ~1e-6 relative
    one = run("char_lm", "adamw", steps=STEPS, task_options=OPTIONS)
    two = metrics["eval_loss"][-1][1]
    assert abs(two - one.final["eval_loss"]) <= 1e-4 * abs(one.final["eval_loss"]), (two, one.final["eval_loss"])
    # a second call finds the finished run in the store (nothing spawned, nothing written)
    assert main([*argv, "--nproc", "2"]) == 0
    assert "(from the store)" in capsys.readouterr().out
    store = RunStore(db)
    try:
        assert len(store.find_runs()) == 1
    finally:
        store.close()


def test_run_nproc_refuses_what_it_cannot_do(tmp_path):
    from optimlab.lab.distributed_run import run_distributed

    with pytest.raises(ValueError, match="nproc must be an int >= 1"):
        run_distributed("char_lm", "adamw", nproc=0, store=str(tmp_path / "r.db"))
    with pytest.raises(ValueError, match="sharpness_every is not supported"):
        run_distributed("char_lm", "adamw", nproc=2, store=str(tmp_path / "r.db"), sharpness_every=5)
