import subprocess
import sys

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
