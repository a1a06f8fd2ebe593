import json
import subprocess
import sys

import pytest

import optimlab
from optimlab.cli import main


def test_list_names_every_optimizer(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()]
    assert names == optimlab.available()


def test_describe_shows_rule_defaults_units_paper_and_state(capsys):
    assert main(["describe", "muon"]) == 0
    out = capsys.readouterr().out
    assert "arXiv:2502.16982" in out
    assert "role matrix: momentum → orthogonalize → shape_scale → decoupled_decay" in out
    assert "rule: b ← μ·b" in out
    assert "ns_steps" in out and "[1, 100]" in out
    assert "4 bytes per parameter" in out and "8 bytes per parameter" in out


def test_unknown_name_is_a_clear_error_and_exit_code():
    r = subprocess.run([sys.executable, "-m", "optimlab.cli", "describe", "adamww"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown optimizer 'adamww'; did you mean 'adamw'" in r.stderr


def test_run_and_compare_store_results(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    assert main(["run", "--task", "quadratic", "--optimizer", "sgd", "--hp", "lr=0.05", "momentum=0.9",
                 "--steps", "30", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "quadratic × sgd seed 0 — finished" in out and "eval_loss" in out
    assert main(["compare", "--task", "quadratic", "--optimizers", "adamw,sgd", "--seeds", "2", "--steps", "20",
                 "--db", db]) == 0
    table = capsys.readouterr().out
    assert "adamw" in table and "sgd" in table and "2/2" in table
    from optimlab.lab.store import RunStore

    with RunStore(db) as store:
        assert len(store.find_runs(task="quadratic", status="finished")) == 5


def test_bad_hyperparameter_and_task_are_clear_errors(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    assert main(["run", "--task", "quadratic", "--optimizer", "sgd", "--hp", "momentum=2", "--db", db]) == 2
    assert "sgd: momentum must be in [0, 1), got 2" in capsys.readouterr().err
    assert main(["run", "--task", "quadratc", "--optimizer", "sgd", "--db", db]) == 2
    assert "did you mean 'quadratic'" in capsys.readouterr().err


def test_sweep_then_report(tmp_path, capsys):
    db, out = str(tmp_path / "runs.db"), tmp_path / "rep"
    assert main(["sweep", "--task", "quadratic", "--optimizer", "sgd", "--space", "lr=log:1e-3:1", "--trials", "3",
                 "--steps", "20", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "3 complete" in text and "best: trial" in text
    assert main(["report", "--db", db, "--out", str(out)]) == 0
    assert (out / "report.html").exists() and "report:" in capsys.readouterr().out
    assert main(["report", "--db", db, "--out", str(out), "--task", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.fixture
def pending_claim(monkeypatch):
    """A claim whose optimizer does not exist (no seed claim is pending at the moment)."""
    from optimlab.lab.claims import CLAIMS, Claim

    claim = Claim(id="test-pending", paper="p", arxiv="", statement="s", optimizers=("sgd", "no_such_opt"),
                  protocol="p", rule="r", margin="m", needs="an optimizer 'no_such_opt'")
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    return claim.id


def test_claims_list_marks_pending(capsys, pending_claim):
    assert main(["claims", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("gd-edge-of-stability" in line and "[ready]" in line for line in lines)
    assert any("dog-vs-tuned-sgd" in line and "[ready]" in line for line in lines)
    assert any(pending_claim in line and "[pending]" in line for line in lines)


def test_claims_run_writes_evidence_and_summary(capsys, tmp_path, pending_claim):
    out = tmp_path / "claims"
    ids = ["adam-fails-amsgrad-converges", pending_claim]
    assert main(["claims", "run", *ids, "--fast", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{pending_claim}: PENDING" in text and "needs optimizer 'no_such_opt'" in text
    assert "adam-fails-amsgrad-converges:" in text and str(out.resolve()) in text
    for claim_id in ids:
        evidence = json.loads((out / f"{claim_id}-fast.json").read_text())
        assert evidence["claim_id"] == claim_id and evidence["fast"] is True
    assert (out / "adam-fails-amsgrad-converges-fast.png").exists()
    assert main(["claims", "run", "nope", "--fast", "--out", str(out)]) == 2
    assert "unknown claim 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["claims", "run", "--fast"])  # neither ids nor --all
