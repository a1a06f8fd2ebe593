"""Hostile inputs for the run store and checkpoints: every case is refused with the expected
exception, a message naming the thing and the value, and the database left unchanged.

Three tables: checkpoint contents (resumed through ``run()``), store rows (read through the
RunStore API), and database files (opened with ``RunStore``)."""

from __future__ import annotations

import copy
import io
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_helpers import (KW, OPTIMIZER, TASK, copy_store, crafted_blob, dump, execute, interrupted_store,
                             set_blob)

from optimlab.lab.runner import run
from optimlab.lab.store import SCHEMA_VERSION, RunStore


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, int, dict]:
    """One store with an interrupted run (checkpoint at step 5), and that checkpoint decoded."""
    path = tmp_path_factory.mktemp("template") / "runs.db"
    rid = interrupted_store(path)
    with RunStore(path) as store:
        _, blob = store.load_checkpoint(rid)
    return path, rid, torch.load(io.BytesIO(blob), weights_only=True)


def _saved(value) -> bytes:
    buf = io.BytesIO()
    torch.save(value, buf)
    return buf.getvalue()


def _edit(path: tuple, value):
    """A mutation setting ``state[path[0]][path[1]]...`` to ``value`` (deleting it if value is DEL)."""
    def mutate(state):
        node = state
        for key in path[:-1]:
            node = node[key]
        if value is DEL:
            del node[path[-1]]
        else:
            node[path[-1]] = value(node[path[-1]]) if callable(value) else value
        return state
    return mutate


DEL = object()
_OLD_FORMAT = object()  # the layout main wrote: numpy / random states as pickled Python objects


def _old_format(state):
    return {"step": 5, "model": state["model"], "optimizer": state["optimizer"], "skipped_steps": 0,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}}


# (id, blob or mutation of the decoded checkpoint, regex the message must match after "run N: ")
CHECKPOINTS = [
    ("pickle-reduce", "crafted", r"checkpoint blob is not a plain tensor checkpoint \(UnpicklingError: "
                                 r"Unsupported global: GLOBAL getattr"),
    ("garbage-bytes", b"not a checkpoint at all", r"checkpoint blob is not a plain tensor checkpoint \(Unpickl"),
    ("empty-bytes", b"", r"checkpoint blob is not a plain tensor checkpoint \(EOFError"),
    ("truncated", "truncated", r"checkpoint blob is not a plain tensor checkpoint \(RuntimeError: "
                               r"PytorchStreamReader failed"),
    ("old-format-pickled-numpy", _OLD_FORMAT, r"checkpoint blob is not a plain tensor checkpoint \(Unpickl.*numpy"),
    ("top-level-list", lambda s: [s], r"checkpoint must be a dict, got list \[\{"),
    ("missing-rng", _edit(("rng",), DEL), r"checkpoint must have keys .* missing \['rng'\], unexpected \[\]"),
    ("extra-key", _edit(("hook",), "x"), r"checkpoint must have keys .* missing \[\], unexpected \['hook'\]"),
    ("format-2", _edit(("format",), 2), r"checkpoint 'format' must be in \[1, 1\], got 2"),
    ("step-float", _edit(("step",), 5.0), r"checkpoint 'step' must be an int, got float 5\.0"),
    ("step-bool", _edit(("step",), True), r"checkpoint 'step' must be an int, got bool True"),
    ("step-negative", _edit(("step",), -1), r"checkpoint 'step' must be in \[0, inf\], got -1"),
    ("step-mismatch", _edit(("step",), 6), r"checkpoint 'step' must equal the stored checkpoint step 5, got 6"),
    ("skipped-gt-step", _edit(("skipped_steps",), 9), r"checkpoint 'skipped_steps' must be in \[0, 5\], got 9"),
    ("skipped-str", _edit(("skipped_steps",), "0"), r"checkpoint 'skipped_steps' must be an int, got str '0'"),
    ("model-list", _edit(("model",), [1]), r"checkpoint 'model' must be a dict of tensors, got list"),
    ("model-entry-float", _edit(("model", "x"), 1.0), r"checkpoint 'model' entry 'x' must map a str to a tensor, "
                                                      r"got float"),
    ("model-missing-key", _edit(("model", "x"), DEL), r"checkpoint 'model' does not fit .*Missing key.*\"x\""),
    ("model-extra-key", _edit(("model", "y"), torch.zeros(4)), r"checkpoint 'model' does not fit .*Unexpected "
                                                               r"key.*\"y\""),
    ("model-shape", _edit(("model", "x"), torch.zeros(5)), r"checkpoint 'model' entry 'x' must be torch\.float32 "
                                                           r"of shape \[4\], got torch\.float32 of shape \[5\]"),
    ("model-dtype", _edit(("model", "x"), torch.zeros(4, dtype=torch.float64)),
     r"checkpoint 'model' entry 'x' must be torch\.float32 of shape \[4\], got torch\.float64"),
    ("optimizer-str", _edit(("optimizer",), "adamw"), r"checkpoint 'optimizer' must be an optimizer state dict .*"
                                                      r"got str 'adamw'"),
    ("optimizer-no-groups", _edit(("optimizer", "param_groups"), DEL),
     r"checkpoint 'optimizer' must be an optimizer state dict .*got dict"),
    ("optimizer-zero-groups", _edit(("optimizer", "param_groups"), []), r"checkpoint 'optimizer' does not fit "
                                                                       r"this ChainOptimizer"),
    ("rng-not-dict", _edit(("rng",), 0), r"checkpoint 'rng' must be a dict, got int 0"),
    ("rng-torch-list", _edit(("rng", "torch"), [0, 1]), r"checkpoint rng 'torch' must be a tensor, got list \[0, 1\]"),
    ("rng-torch-dtype", _edit(("rng", "torch"), lambda t: t.long()),
     r"checkpoint rng 'torch' must be a torch\.uint8 tensor of shape \[5056\], got torch\.int64"),
    ("rng-torch-size", _edit(("rng", "torch"), lambda t: t[:100]),
     r"checkpoint rng 'torch' must be a torch\.uint8 tensor of shape \[5056\], got torch\.uint8 of shape \[100\]"),
    ("rng-numpy-missing-pos", _edit(("rng", "numpy", "pos"), DEL), r"checkpoint rng 'numpy' must have keys "
                                                                   r".*missing \['pos'\]"),
    ("rng-numpy-keys-shape", _edit(("rng", "numpy", "keys"), lambda t: t[:623]),
     r"checkpoint rng numpy 'keys' must be a torch\.int64 tensor of shape \[624\], got torch\.int64 of shape \[623\]"),
    ("rng-numpy-keys-big", _edit(("rng", "numpy", "keys"), lambda t: t.index_fill(0, torch.tensor([3]), 2**40)),
     r"checkpoint rng numpy 'keys' values must be in \[0, 4294967295\], got \[\d+, 1099511627776\]"),
    ("rng-numpy-keys-negative", _edit(("rng", "numpy", "keys"), lambda t: t.index_fill(0, torch.tensor([0]), -7)),
     r"checkpoint rng numpy 'keys' values must be in \[0, 4294967295\], got \[-7, \d+\]"),
    ("rng-numpy-pos", _edit(("rng", "numpy", "pos"), 625), r"checkpoint rng numpy 'pos' must be in \[0, 624\], "
                                                           r"got 625"),
    ("rng-numpy-has-gauss", _edit(("rng", "numpy", "has_gauss"), 2), r"checkpoint rng numpy 'has_gauss' must be "
                                                                     r"in \[0, 1\], got 2"),
    ("rng-numpy-gauss-str", _edit(("rng", "numpy", "cached_gaussian"), "0.5"),
     r"checkpoint rng numpy 'cached_gaussian' must be a float, got '0\.5'"),
    ("rng-random-version", _edit(("rng", "random", "version"), 2), r"checkpoint rng random 'version' must be in "
                                                                   r"\[3, 3\], got 2"),
    ("rng-random-length", _edit(("rng", "random", "state"), lambda t: t[:624]),
     r"checkpoint rng random 'state' must be a torch\.int64 tensor of shape \[625\], got torch\.int64 of shape "
     r"\[624\]"),
    ("rng-random-position", _edit(("rng", "random", "state"), lambda t: t.index_fill(0, torch.tensor([624]), 700)),
     r"checkpoint rng random 'state' position must be in \[0, 624\], got 700"),
    ("rng-random-gauss-str", _edit(("rng", "random", "gauss_next"), "x"),
     r"checkpoint rng random 'gauss_next' must be a float or None, got 'x'"),
]


@pytest.mark.parametrize("case, bad, match", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_hostile_checkpoint_is_refused(template, tmp_path, case, bad, match):
    source, rid, state = template
    path = copy_store(source, tmp_path / "runs.db")
    marker = tmp_path / "pwned"
    if bad == "crafted":
        blob = crafted_blob(str(marker))
    elif bad == "truncated":
        blob = _saved(state)[:4000]
    elif bad is _OLD_FORMAT:
        blob = _saved(_old_format(state))
    elif callable(bad):
        blob = _saved(bad(copy.deepcopy(state)))
    else:
        blob = bad
    set_blob(path, rid, blob)
    before = dump(path)
    rng_before = torch.get_rng_state()
    with pytest.raises(ValueError, match=rf"^run {rid}: {match}.*--restart"):
        run(TASK, OPTIMIZER, store=path, **KW)
    assert dump(path) == before  # status, metrics and checkpoint untouched
    assert not marker.exists()
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's generators untouched


def test_the_template_checkpoint_itself_resumes(template, tmp_path):
    # the control for the table above: the unmodified blob, re-saved, is accepted
    source, rid, state = template
    path = copy_store(source, tmp_path / "runs.db")
    set_blob(path, rid, _saved(state))
    assert run(TASK, OPTIMIZER, store=path, **KW).resumed_from == 5


# (id, SQL corrupting the stored row of run 1, the API call that reads it, regex after "run 1: ")
_ROWS = "UPDATE runs SET {} WHERE id = 1"
_METRIC = "UPDATE metrics SET {} WHERE run_id = 1 AND name = 'loss' AND step = 1"
_CKPT = "UPDATE checkpoints SET {} WHERE run_id = 1"
ROWS = [
    ("status-unknown", _ROWS.format("status = 'paused'"), "run", r"status must be one of .*got 'paused'"),
    ("status-number", _ROWS.format("status = 7"), "find", r"status must be one of .*got '7'"),
    ("options-not-json", _ROWS.format("task_options = '{bad'"), "get", r"task_options must be a JSON object, "
                                                                        r"got '\{bad'"),
    ("options-json-list", _ROWS.format("task_options = '[1, 2]'"), "get", r"task_options must be a JSON object, "
                                                                          r"got '\[1, 2\]'"),
    ("hparams-json-number", _ROWS.format("hparams = '3'"), "find", r"hparams must be a JSON object, got '3'"),
    ("hparams-blob", _ROWS.format("hparams = x'00ff'"), "get", r"hparams must be text, got b'\\x00\\xff'"),
    ("task-blob", _ROWS.format("task = x'00'"), "find", r"task must be text, got b'\\x00'"),
    ("seed-text", _ROWS.format("seed = 'zero'"), "get", r"seed must be an integer >= 0, got 'zero'"),
    ("seed-negative", _ROWS.format("seed = -1"), "get", r"seed must be an integer >= 0, got -1"),
    ("steps-zero", _ROWS.format("steps = 0"), "get", r"steps must be an integer >= 1, got 0"),
    ("steps-real", _ROWS.format("steps = 2.5"), "find", r"steps must be an integer >= 1, got 2\.5"),
    ("threads-zero", _ROWS.format("threads = 0"), "get", r"threads must be an integer >= 1 or NULL, got 0"),
    ("metric-text", _METRIC.format("value = 'boom'"), "metrics", r"metric 'loss' at step 1 must be a number, "
                                                                 r"NULL or one of .*got 'boom'"),
    ("metric-blob", _METRIC.format("value = x'00'"), "metrics", r"metric 'loss' at step 1 must be a number.*"
                                                                r"got b'\\x00'"),
    ("metric-step-text", _METRIC.format("step = 'one'"), "metrics", r"metric 'loss' step must be an integer "
                                                                    r">= 0, got 'one'"),
    ("metric-step-negative", _METRIC.format("step = -4"), "metrics", r"metric 'loss' step must be an integer "
                                                                     r">= 0, got -4"),
    ("checkpoint-step-text", _CKPT.format("step = 'five'"), "checkpoint", r"checkpoint step must be an integer "
                                                                          r">= 0, got 'five'"),
    ("checkpoint-step-negative", _CKPT.format("step = -3"), "checkpoint", r"checkpoint step must be an integer "
                                                                          r">= 0, got -3"),
    ("checkpoint-blob-text", _CKPT.format("blob = 'abc'"), "checkpoint", r"checkpoint blob must be a BLOB, "
                                                                         r"got 'str'"),
]
_READ = {
    "get": lambda s: s.get_run(1),
    "find": lambda s: s.find_runs(),
    "run": lambda s: run(TASK, OPTIMIZER, store=s, **KW),  # find_matching, then get_run
    "metrics": lambda s: s.metrics(1),
    "checkpoint": lambda s: s.load_checkpoint(1),
}


@pytest.mark.parametrize("case, sql, read, match", ROWS, ids=[c[0] for c in ROWS])
def test_hostile_row_is_refused(template, tmp_path, case, sql, read, match):
    source, rid, _ = template
    assert rid == 1
    path = copy_store(source, tmp_path / "runs.db")
    execute(path, sql)
    before = dump(path)
    with RunStore(path) as store:
        with pytest.raises(ValueError, match=rf"runs\.db': run 1: {match}"):
            _READ[read](store)
    assert dump(path) == before


def _sqlite(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()
    return path


# (id, builder of the file at path, regex the ValueError must match; each names the file)
FILES = [
    ("garbage", lambda p: p.write_bytes(b"definitely not SQLite\n" * 200),
     r"'[^']*bad\.db' is not a usable optimlab run database \(file is not a database\)"),
    ("truncated-sqlite", lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 84),
     r"'[^']*bad\.db' is not a usable optimlab run database"),
    ("newer-version",
     lambda p: _sqlite(p, "CREATE TABLE runs (id INTEGER)", f"PRAGMA user_version = {SCHEMA_VERSION + 6}"),
     rf"'[^']*bad\.db' has schema version {SCHEMA_VERSION + 6}, written by a newer optimlab; this optimlab reads "
     rf"schema version {SCHEMA_VERSION}"),
    ("negative-version", lambda p: _sqlite(p, "CREATE TABLE runs (id INTEGER)", "PRAGMA user_version = -1"),
     r"'[^']*bad\.db' has schema version -1 with tables \['runs'\]"),
    ("foreign-table", lambda p: _sqlite(p, "CREATE TABLE something (x)"),
     r"'[^']*bad\.db' has schema version 0 with tables \['something'\]"),
    ("missing-table", lambda p: _sqlite(p, "CREATE TABLE runs (id INTEGER)", f"PRAGMA user_version = {SCHEMA_VERSION}"),
     rf"'[^']*bad\.db' has schema version {SCHEMA_VERSION} with tables \['runs'\]"),
    ("runs-other-columns", lambda p: _sqlite(p, "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)"),
     r"'[^']*bad\.db': table 'runs' has columns \['id', 'name'\], expected \['id', 'task'"),
    ("directory", lambda p: p.mkdir(), r"'[^']*bad\.db' is not a usable optimlab run database \(unable to open"),
]


@pytest.mark.parametrize("case, build, match", FILES, ids=[c[0] for c in FILES])
def test_hostile_file_is_refused(tmp_path, case, build, match):
    path = tmp_path / "bad.db"
    build(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(ValueError, match=match):
        RunStore(path)
    assert (path.read_bytes() if path.is_file() else None) == before
