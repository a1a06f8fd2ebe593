"""Runs branched from another run's kept checkpoint (lab/branch.py), and WSD / WSD-S on them."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from optimlab.lab import branch
from optimlab.lab.runner import run
from optimlab.lab.store import RunStore

QUAD = {"dim": 8}
HP = {"lr": 0.05}


def _loss(db, rid):
    return db.metrics(rid)["loss"]


def test_a_branch_ends_bit_identical_to_one_run_of_the_same_schedule(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    parent = run("digits_mlp", "adamw", hparams={**HP, "schedule": "constant()"}, steps=12, store=db,
                 keep_checkpoint=True, eval_every=4)
    child = run("digits_mlp", "adamw", hparams={**HP, "schedule": "wsd(decay=0.4)"}, steps=20, store=db,
                branch_from=parent.run_id, eval_every=4)
    direct = run("digits_mlp", "adamw", hparams={**HP, "schedule": "wsd(decay=0.4)"}, steps=20, store=db,
                 eval_every=4)
    assert child.status == direct.status == "finished"
    assert _loss(db, child.run_id) == _loss(db, direct.run_id)  # every step's loss, copied part included
    timing = ("ms", "overhead")  # wall-clock figures differ; every measured value must not
    assert {k: v for k, v in child.final.items() if not any(t in k for t in timing)} == \
        {k: v for k, v in direct.final.items() if not any(t in k for t in timing)}
    for a, b in zip(child.model.parameters(), direct.model.parameters()):
        assert torch.equal(a, b)
    assert db.get_run(child.run_id)["hparams"]["branch_from"] == parent.run_id
    # the decay starts at the branch point: the lr logged after it is below the stable lr
    lrs = dict(db.metrics(child.run_id)["lr"])
    assert lrs[12] == pytest.approx(0.05) and lrs[13] < 0.05 and lrs[20] < lrs[13]


def test_branching_is_refused_clearly_before_any_run_is_written(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    kept = run("quadratic", "sgd", hparams=HP, steps=5, task_options=QUAD, store=db, keep_checkpoint=True)
    dropped = run("quadratic", "sgd", hparams={"lr": 0.02}, steps=5, task_options=QUAD, store=db)
    n = len(db.find_runs())
    cases = [
        (dict(hparams={"lr": 0.1}, steps=9, branch_from=kept.run_id), "hyperparameters"),
        (dict(hparams=HP, steps=9, seed=1, branch_from=kept.run_id), "seed"),
        (dict(hparams=HP, steps=5, branch_from=kept.run_id), "not before this run's last step 5"),
        (dict(hparams={"lr": 0.02}, steps=9, branch_from=dropped.run_id), "no stored checkpoint"),
        (dict(hparams=HP, steps=9, branch_from=999), "branch_from=999"),
        (dict(hparams=HP, steps=9, branch_from="1"), "must be a run id"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            run("quadratic", "sgd", task_options=QUAD, store=db, **kwargs)
    # a tampered parent checkpoint is refused by the same validation as a resume, naming the parent
    db.conn.execute("UPDATE checkpoints SET blob = ? WHERE run_id = ?", (sqlite3.Binary(b"not a checkpoint"),
                                                                         kept.run_id))
    db.conn.commit()
    with pytest.raises(ValueError, match=f"run {kept.run_id}: checkpoint"):
        run("quadratic", "sgd", hparams=HP, steps=9, task_options=QUAD, store=db, branch_from=kept.run_id)
    assert len(db.find_runs()) == n


def test_wsd_runs_make_every_budget_from_one_stable_run(tmp_path):
    db = RunStore(tmp_path / "runs.db")
    runs = branch.wsd_runs("quadratic", "sgd", [10, 20], hparams=HP, decay=0.2, store=db, task_options=QUAD)
    assert sorted(runs.stable) == [8, 16] and sorted(runs.branches) == [10, 20]
    seg2 = db.get_run(runs.stable[16])
    assert seg2["hparams"]["branch_from"] == runs.stable[8] and seg2["steps"] == 16
    # each budget's branch equals a direct WSD run of that budget
    for b in (10, 20):
        direct = run("quadratic", "sgd", hparams={**HP, "schedule": "wsd(decay=0.2)"}, steps=b, store=db,
                     task_options=QUAD)
        assert _loss(db, runs.branches[b]) == _loss(db, direct.run_id)
    final = runs.final(db)
    assert set(final["wsd"]) == set(final["wsd_s"]) == {10, 20}
    # WSD-S equals WSD at the first budget (same stable phase, same decay), then differs
    assert final["wsd_s"][10] == final["wsd"][10] and final["wsd_s"][20] != final["wsd"][20]
