"""Issue 8 findings on the run store: a crafted checkpoint must not run code and can be restarted
past; parallel first writers on a new file all record their runs; a kill mid-creation leaves a
usable file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hostile_helpers import KW, OPTIMIZER, TASK, crafted_blob, dump, interrupted_store, set_blob

from optimlab.lab.runner import run
from optimlab.lab.store import SCHEMA_VERSION, RunStore

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_crafted_checkpoint_does_not_execute_and_is_refused_naming_the_run(tmp_path):
    path = tmp_path / "runs.db"
    rid = interrupted_store(path)
    marker = tmp_path / "pwned"
    set_blob(path, rid, crafted_blob(str(marker)))
    before = dump(path)
    for _ in range(2):  # refused the same way every time, never executed, nothing written
        with pytest.raises(ValueError, match=rf"run {rid}: checkpoint blob is not a plain tensor "
                                             rf"checkpoint \(UnpicklingError: Unsupported global.*--restart"):
            run(TASK, OPTIMIZER, store=path, **KW)
        assert not marker.exists()
        assert dump(path) == before


def test_restart_trains_the_refused_run_afresh(tmp_path):
    reference = run(TASK, OPTIMIZER, store=tmp_path / "ref.db", **KW)
    path = tmp_path / "runs.db"
    rid = interrupted_store(path)
    marker = tmp_path / "pwned"
    set_blob(path, rid, crafted_blob(str(marker)))
    fresh = run(TASK, OPTIMIZER, store=path, restart=True, **KW)
    assert not marker.exists()
    assert fresh.ok and fresh.run_id == rid and fresh.resumed_from is None
    untimed = {k: v for k, v in fresh.metrics.items() if k not in ("step_ms", "opt_ms", "eval_ms")}
    assert untimed == {k: v for k, v in reference.metrics.items() if k not in ("step_ms", "opt_ms", "eval_ms")}
    assert torch.equal(fresh.model.x, reference.model.x)
    with RunStore(path) as store:
        assert store.load_checkpoint(rid) is None  # the crafted blob is gone (finished runs drop theirs)
    # a finished run is still reused, restart or not
    assert run(TASK, OPTIMIZER, store=path, restart=True, **KW).cached


def test_compare_and_sweep_pass_restart_through(tmp_path, capsys):
    """`optimlab compare --restart` and `optimlab sweep --restart` train a refused run afresh, as `run` does."""
    from optimlab.cli import main

    path = tmp_path / "runs.db"
    rid = interrupted_store(path)
    marker = tmp_path / "pwned"
    set_blob(path, rid, crafted_blob(str(marker)))
    common = ["--task", TASK, "--option", "dim=4", "--steps", str(KW["steps"]), "--db", str(path)]
    argv = ["compare", *common, "--optimizers", OPTIMIZER, "--seeds", "1", "--eval-every", "4",
            "--checkpoint-every", "5", "--no-progress"]
    assert main(argv) != 0
    assert f"run {rid}: checkpoint blob is not a plain tensor checkpoint" in capsys.readouterr().err
    assert main(argv + ["--restart"]) == 0
    assert not marker.exists()
    with RunStore(path) as store:
        assert store.get_run(rid)["status"] == "finished"
    # sweep: the one trial (lr = the task's AdamW lr, the rest filled in from it) is the interrupted run
    path = tmp_path / "sweep.db"
    rid = interrupted_store(path)
    set_blob(path, rid, crafted_blob(str(marker)))
    common = ["--task", TASK, "--option", "dim=4", "--steps", str(KW["steps"]), "--db", str(path)]
    argv = ["sweep", *common, "--optimizer", OPTIMIZER, "--space", "lr=choice:0.05", "--trials", "1"]
    main(argv)  # optuna records the refusal as a failed trial; the run is untouched
    with RunStore(path) as store:
        assert store.get_run(rid)["status"] != "finished"
    assert main(argv + ["--restart"]) == 0
    assert not marker.exists()
    with RunStore(path) as store:
        assert store.get_run(rid)["status"] == "finished"


def test_restart_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match=r"run: restart must be a bool, got 'yes'"):
        run(TASK, OPTIMIZER, store=tmp_path / "r.db", restart="yes", **KW)
    assert not (tmp_path / "r.db").exists()


_WRITER = textwrap.dedent("""
    import os, sys, time
    from optimlab.lab.store import RunStore
    path, folder, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
    open(os.path.join(folder, f"ready{i}"), "w").close()
    while not os.path.exists(os.path.join(folder, "go")):
        time.sleep(0.001)
    with RunStore(path) as store:
        rid = store.create_run("quadratic", {}, "sgd", {"writer": i}, 0, 10, env={"code_version": "test"})
        store.log_metrics(rid, 1, {"loss": float(i)})
        store.finish(rid)
""")


def test_eight_parallel_first_writers_all_record_their_runs(tmp_path):
    path, n = tmp_path / "new" / "runs.db", 8
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(tmp_path), str(i)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.monotonic() + 120
    while sum((tmp_path / f"ready{i}").exists() for i in range(n)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all start writing together, on a file that does not exist yet
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, errors
    with RunStore(path) as store:
        runs = store.find_runs(status="finished")
        assert sorted(r["hparams"]["writer"] for r in runs) == list(range(n))
        assert all(store.metrics(r["id"])["loss"] == [(1, float(r["hparams"]["writer"]))] for r in runs)


_KILLED = textwrap.dedent("""
    import os, signal, sqlite3, sys
    connect = sqlite3.connect
    def killing_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        def trace(sql):  # die as the second table is being created: the first one already exists
            if "CREATE TABLE" in sql and "metrics" in sql:
                os.kill(os.getpid(), signal.SIGKILL)
        conn.set_trace_callback(trace)
        return conn
    sqlite3.connect = killing_connect
    from optimlab.lab.store import RunStore
    RunStore(sys.argv[1])
""")


def test_kill_during_schema_creation_leaves_a_usable_file(tmp_path):
    path = tmp_path / "runs.db"
    proc = subprocess.run([sys.executable, "-c", _KILLED, str(path)], env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with RunStore(path) as store:
        rid = store.create_run("quadratic", {}, "sgd", {}, 0, 10, env={})
        assert store.get_run(rid)["status"] == "running"
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_partial_schema_of_an_older_version_is_completed(tmp_path):
    # what a kill between statements left behind before creation was one transaction
    import sqlite3

    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, "
                 "task_options TEXT NOT NULL, optimizer TEXT NOT NULL, hparams TEXT NOT NULL, "
                 "seed INTEGER NOT NULL, steps INTEGER NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, "
                 "finished REAL, code_version TEXT, torch_version TEXT, python_version TEXT, machine TEXT, "
                 "threads INTEGER, error TEXT)")
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        store.create_run("quadratic", {}, "sgd", {}, 0, 10, env={})
        assert len(store.find_runs()) == 1
