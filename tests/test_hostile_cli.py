"""Hostile inputs at the command line: each case exits with code 2, a message naming the thing and
the value, no traceback, and the run database unchanged. Also: ``--help`` and ``list`` do not
import torch, the ``list`` table matches the registry, and a closed stdout pipe ends quietly."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optimlab import _catalog
from optimlab.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, str(Path(__file__).resolve().parent / "lab"))
from hostile_helpers import crafted_blob, dump, execute, interrupted_store, set_blob  # noqa: E402

RUN = ["run", "--task", "quadratic", "--optimizer", "sgd", "--steps", "5"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """Template files: a store with one finished run, one with an interrupted run, and bad files."""
    folder = tmp_path_factory.mktemp("stores")
    finished = folder / "finished.db"
    assert main([*RUN, "--option", "dim=4", "--db", str(finished)]) == 0
    conn = sqlite3.connect(finished)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    interrupted = folder / "interrupted.db"
    rid = interrupted_store(interrupted)
    set_blob(interrupted, rid, crafted_blob(str(folder / "pwned")))
    garbage = folder / "garbage.db"
    garbage.write_bytes(b"not a database\n" * 300)
    newer = folder / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    paused = folder / "paused.db"
    shutil.copyfile(finished, paused)
    execute(paused, "UPDATE runs SET status = 'paused'")
    badjson = folder / "badjson.db"
    shutil.copyfile(finished, badjson)
    execute(badjson, "UPDATE runs SET hparams = '3'")
    return {"finished": finished, "interrupted": interrupted, "garbage": garbage, "newer": newer,
            "paused": paused, "badjson": badjson}


Q = ["--task", "quadratic"]
# (id, store template, argv after which "--db PATH" is appended, regex stderr must match)
CASES = [
    ("hp-no-equals", "finished", [*RUN, "--hp", "lr"], r"--hp must be \[OPTIMIZER:\]KEY=VALUE, got 'lr'"),
    ("hp-empty-key", "finished", [*RUN, "--hp", "=0.1"], r"--hp must be \[OPTIMIZER:\]KEY=VALUE, got '=0\.1'"),
    ("option-no-equals", "finished", [*RUN, "--option", "dim"], r"--option must be KEY=VALUE, got 'dim'"),
    ("hp-out-of-range", "finished", [*RUN, "--hp", "momentum=2"], r"sgd: momentum must be in \[0, 1\), got 2"),
    ("hp-unknown", "finished", [*RUN, "--hp", "lrr=0.1"], r"sgd: unexpected hyperparameter 'lrr'"),
    ("hp-not-a-number", "finished", [*RUN, "--hp", "lr=abc"], r"sgd: lr must be a number, got 'abc'"),
    ("hp-nan", "finished", [*RUN, "--hp", "lr=float('nan')"], r"sgd: lr .*float\('nan'\)"),
    ("unknown-optimizer", "finished", ["run", *Q, "--optimizer", "sgdd"], r"unknown optimizer 'sgdd'"),
    ("unknown-task", "finished", ["run", "--task", "quadratc", "--optimizer", "sgd"],
     r"'quadratc'.*did you mean 'quadratic'"),
    ("option-out-of-range", "finished", [*RUN, "--option", "dim=-3"], r"quadratic: dim must be an int .*got -3"),
    ("option-unknown", "finished", [*RUN, "--option", "dimm=3"], r"quadratic: unknown option\(s\) dimm"),
    ("threads-zero", "finished", [*RUN, "--threads", "0"], r"run: threads must be an int >= 1, got 0"),
    ("steps-zero", "finished", ["run", *Q, "--optimizer", "sgd", "--steps", "0"],
     r"run: steps must be an int >= 1, got 0"),
    ("seed-negative", "finished", [*RUN, "--seed", "-1"], r"run: seed must be an int >= 0, got -1"),
    ("sharpness-every-zero", "finished", [*RUN, "--sharpness-every", "0"],
     r"run: sharpness_every must be an int >= 1, got 0"),
    ("db-garbage", "garbage", RUN, r"'[^']*garbage\.db' is not a usable optimlab run database"),
    ("db-newer", "newer", RUN, r"'[^']*newer\.db' has schema version 9, written by a newer optimlab"),
    ("db-row-status", "paused", [*RUN, "--option", "dim=4"], r"run 1: status must be one of .*got 'paused'"),
    ("db-crafted-checkpoint", "interrupted", ["run", *Q, "--optimizer", "adamw", "--steps", "8", "--option",
                                              "dim=4"],
     r"run 1: checkpoint blob is not a plain tensor checkpoint .*--restart"),
    ("compare-db-garbage", "garbage", ["compare", *Q, "--optimizers", "sgd", "--steps", "5"],
     r"'[^']*garbage\.db' is not a usable optimlab run database"),
    ("compare-seeds-zero", "finished", ["compare", *Q, "--optimizers", "sgd", "--seeds", "0"],
     r"compare: seeds must be an int >= 1, got 0"),
    ("compare-db-newer", "newer", ["compare", *Q, "--optimizers", "sgd", "--steps", "5"],
     r"schema version 9, written by a newer optimlab"),
    ("report-db-garbage", "garbage", ["report", "--out", "{out}"], r"garbage\.db' is not a usable optimlab run"),
    ("report-db-newer", "newer", ["report", "--out", "{out}"], r"schema version 9, written by a newer"),
    ("report-db-row-json", "badjson", ["report", "--out", "{out}"], r"run 1: hparams must be a JSON object, "
                                                                    r"got '3'"),
    ("sweep-space-order", "finished", ["sweep", *Q, "--optimizer", "sgd", "--space", "lr=log:1:0"],
     r"lr: low must be below high, got log:1:0"),
    ("sweep-space-kind", "finished", ["sweep", *Q, "--optimizer", "sgd", "--space", "lr=wat:1:2"],
     r"lr='wat:1:2': expected KIND:LOW:HIGH"),
    ("describe-unknown", None, ["describe", "adamww"], r"unknown optimizer 'adamww'; did you mean 'adamw'"),
    ("describe-empty", None, ["describe", ""], r"unknown optimizer ''"),
    # argparse's own refusals: exit 2 and a message naming the argument and the value
    ("steps-not-int", "finished", ["run", *Q, "--optimizer", "sgd", "--steps", "abc"],
     r"argument --steps: invalid int value: 'abc'"),
    ("threads-float", "finished", [*RUN, "--threads", "1.5"], r"argument --threads: invalid int value: '1\.5'"),
    ("unknown-command", None, ["frobnicate"], r"invalid choice: 'frobnicate'"),
    ("missing-task", "finished", ["run", "--optimizer", "sgd"], r"the following arguments are required: --task"),
    ("restart-takes-no-value", "finished", [*RUN, "--restart=yes"],
     r"argument --restart: ignored explicit argument 'yes'"),
]


@pytest.mark.parametrize("case, template, argv, match", CASES, ids=[c[0] for c in CASES])
def test_hostile_cli_input_exits_2(stores, tmp_path, capsys, case, template, argv, match):
    argv = [a.replace("{out}", str(tmp_path / "report")) for a in argv]
    db = None
    if template is not None:
        db = tmp_path / stores[template].name
        shutil.copyfile(stores[template], db)
        argv = [*argv, "--db", str(db)]
    before = (dump(db) if template not in ("garbage",) else db.read_bytes()) if db else None
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert any(re.search(match, line) for line in err.splitlines()), err
    if db is not None:
        assert (dump(db) if template != "garbage" else db.read_bytes()) == before
    assert not (stores["interrupted"].parent / "pwned").exists()


def test_restart_flag_trains_the_refused_run_afresh(stores, tmp_path, capsys):
    db = tmp_path / "runs.db"
    shutil.copyfile(stores["interrupted"], db)
    argv = ["run", *Q, "--optimizer", "adamw", "--steps", "8", "--option", "dim=4", "--db", str(db)]
    assert main(argv) == 2
    assert main([*argv, "--restart"]) == 0
    assert "run 1: quadratic × adamw seed 0 — finished" in capsys.readouterr().out
    assert not (stores["interrupted"].parent / "pwned").exists()


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["run", "--help"]])
def test_help_and_list_do_not_import_torch(argv):
    code = textwrap.dedent(f"""
        import sys
        from optimlab.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print("TORCH" if "torch" in sys.modules else "NO TORCH", file=sys.stderr)
    """)
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip().endswith("NO TORCH"), r.stderr


def test_list_table_matches_the_registry():
    assert _catalog.SOURCE_HASH == _catalog.source_hash(), (
        "core/ or optimizers/ changed: regenerate the list table with `python -m optimlab._catalog`")
    assert _catalog.entries() == _catalog.from_registry()


def test_stale_list_table_falls_back_to_the_registry(monkeypatch, capsys):
    monkeypatch.setattr(_catalog, "ENTRIES", (("bogus", "not an optimizer"),))
    monkeypatch.setattr(_catalog, "SOURCE_HASH", "0" * 64)
    assert main(["list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [name for name, _ in _catalog.from_registry()] and "bogus" not in names


@pytest.mark.parametrize("argv", [["describe", "muon"], ["list"], ["--help"]])
def test_closed_stdout_pipe_ends_quietly(argv):
    # the reader is gone before optimlab writes: `optimlab describe muon | head -0`
    proc = subprocess.Popen([sys.executable, "-m", "optimlab.cli", *argv], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    # 141 = 128 + SIGPIPE; argparse's --help swallows the write error itself and exits 0
    assert proc.wait(timeout=120) == (0 if argv == ["--help"] else 141), err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
