"""compare(): task targets, "k/n" reached, 95% intervals ("n = 1"), paired tests, tuning and its edge flag,
the 120-column table; the command line's per-optimizer hyperparameters and grids."""

from __future__ import annotations

import pytest

from optimlab.cli import main, parse_optimizer_hparams, parse_tune
from optimlab.lab.claims import Claim, Outcome
from optimlab.lab.claims.protocols import Tuned, grid_edges
from optimlab.lab.compare import compare
from optimlab.lab.store import RunStore
from optimlab.lab.tune import TUNE_SEED, load_decisions

QUAD = {"dim": 10}


def test_steps_to_target_counts_the_seeds_that_reached_it():
    # at lr 0.1, 60 steps, seeds 0 and 1 end below 0.045 and seed 2 at 0.048; at lr 1e-3 none gets there
    table = compare("quadratic", [("sgd", {"lr": 0.1}), ("sgd", {"lr": 1e-3})], seeds=3, steps=60,
                    task_options=QUAD, progress=False, eval_every=5, target=0.045)
    some, none = table.rows
    assert table.target == 0.045 and table.target_source == "given"
    assert some["reached"] == 2 and some["stats"]["steps_to_target"].n == 2
    assert none["reached"] == 0 and none["stats"]["steps_to_target"].n == 0
    text = str(table)
    assert "2/3]" in text and "0/3" in text and "± 0 " not in text
    assert none["vs_baseline"].n == 3 and none["vs_baseline"].diff.mean > 0  # worse than the baseline row
    assert some["vs_baseline"] is None
    assert max(map(len, text.splitlines())) <= 120
    # without target=, the task's own target applies, whoever is in the table
    assert compare("quadratic", [("sgd", {"lr": 1e-3})], seeds=1, steps=5, task_options=QUAD,
                   progress=False).target == 1e-3


def test_one_seed_is_n_equals_1_not_a_zero_spread():
    text = str(compare("quadratic", [("sgd", {"lr": 0.3})], seeds=1, steps=20, task_options=QUAD,
                       progress=False))
    assert "(n = 1)" in text and "± 0" not in text


def test_tuning_runs_on_the_tuning_seed_flags_the_edge_and_is_saved(tmp_path):
    path = tmp_path / "runs.db"
    table = compare("quadratic", ["sgd"], seeds=2, steps=20, store=str(path), task_options=QUAD,
                    progress=False, tune={"lr": "log:1e-4:1e-2:3"})
    (row,) = table.rows
    t = row["tuning"]
    assert t.best == 1e-2 and t.at_edge == "high" and row["hparams"] == {"lr": 1e-2}
    assert row["label"] == "sgd(lr=0.01)"
    text = str(table)
    assert "[edge]" in text and "inconclusive" in text and f"seed {TUNE_SEED}" in text
    with RunStore(path) as store:
        seeds = sorted(r["seed"] for r in store.find_runs(task="quadratic"))
    assert seeds == [0, 1, TUNE_SEED, TUNE_SEED, TUNE_SEED]
    (decision,) = load_decisions(path)
    assert decision["at_edge"] == "high" and decision["grid"] == [1e-4, 1e-3, 1e-2]


def test_per_optimizer_grids_and_bad_entries():
    with pytest.raises(ValueError, match="listed twice"):
        compare("quadratic", ["sgd", "sgd"], steps=2, progress=False, task_options=QUAD)
    with pytest.raises(TypeError, match="momentum"):  # refused before anything runs
        compare("quadratic", ["adam", ("adamw", {"momentum": 0.9})], steps=2, progress=False, task_options=QUAD)
    with pytest.raises(ValueError, match="baseline"):
        compare("quadratic", ["sgd"], steps=2, progress=False, task_options=QUAD, baseline="adamw")


def test_cli_per_optimizer_hyperparameters_parse():
    hp = parse_optimizer_hparams(["muon:lr=0.03,adamw:lr=1e-3", "weight_decay=0.1",
                                  "adamw:betas=(0.9,0.95)"], ["muon", "adamw"])
    assert hp == {"muon": {"lr": 0.03, "weight_decay": 0.1},
                  "adamw": {"lr": 1e-3, "weight_decay": 0.1, "betas": (0.9, 0.95)}}
    with pytest.raises(ValueError, match="'lion' is not one of the optimizers"):
        parse_optimizer_hparams(["lion:lr=1"], ["muon"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_optimizer_hparams(["lr"], ["muon"])
    assert parse_tune(["lr=log:1e-4:1e-1:7", "muon:lr=0.01,0.02"], ["muon", "adamw"]) == {
        "lr": "log:1e-4:1e-1:7", "muon": {"lr": "0.01,0.02"}}


def test_cli_compare_with_tuning_and_runner_options(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    assert main(["compare", "--task", "quadratic", "--option", "dim=10", "--optimizers", "sgd,adam",
                 "--hp", "sgd:momentum=0.9", "--tune", "sgd:lr=0.001,0.01,0.1", "--seeds", "2", "--steps", "20",
                 "--eval-every", "5", "--keep-checkpoint", "--no-progress", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "sgd(lr=" in out and "momentum=0.9" in out and "adam " in out
    with RunStore(db) as store:
        runs = store.find_runs(task="quadratic")
        assert len(runs) == 3 + 2 * 2
        assert all(store.load_checkpoint(r["id"]) is not None for r in runs)  # --keep-checkpoint
        assert [s for s, _ in store.metrics(runs[-1]["id"])["eval_loss"]] == [0, 5, 10, 15, 20]


def test_a_claim_whose_best_value_sits_at_the_grid_edge_is_inconclusive():
    tuned = {"muon": Tuned("muon", {0.01: [1.0], 0.02: [0.5]}, 0.02, {0: 0.5}),
             "kaon": Tuned("kaon", {0.01: [1.0], 0.02: [0.4], 0.04: [0.9]}, 0.02, {0: 0.4})}
    assert tuned["muon"].at_edge == "high" and tuned["kaon"].at_edge is None
    edges = grid_edges(tuned)
    assert edges == ["muon lr=0.02 at the high edge of [0.01 .. 0.02]"]
    for passed in (True, False):  # would be "holds" / "does not hold"
        claim = Claim(id="edge-test", paper="p", arxiv="", statement="s", optimizers=("muon",), protocol="p",
                      rule="r", margin="m", experiment=lambda fast, seeds, passed=passed: Outcome(
                          {s: {"x": 1.0} for s in seeds}, {s: passed for s in seeds}, "measured.",
                          grid_edges=edges))
        ev = claim.run(fast=True, seeds=[0, 1])
        assert ev.verdict == "inconclusive"
        assert "edge of its grid" in ev.explanation and "muon lr=0.02" in ev.explanation
    fine = Claim(id="edge-test-2", paper="p", arxiv="", statement="s", optimizers=("muon",), protocol="p",
                 rule="r", margin="m", experiment=lambda fast, seeds: Outcome(
                     {s: {"x": 1.0} for s in seeds}, {s: True for s in seeds}, "measured."))
    assert fine.run(fast=True, seeds=[0, 1]).verdict == "holds"
