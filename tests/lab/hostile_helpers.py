"""Shared helpers of the hostile-input tests: a store holding one interrupted run with a checkpoint,
a crafted pickle payload, and a dump of a database to compare before and after a refusal."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
from pathlib import Path

import torch

from optimlab.lab.runner import run

TASK, OPTIMIZER, OPTIONS = "quadratic", "adamw", {"dim": 4}
KW = dict(steps=8, checkpoint_every=5, eval_every=4, task_options=OPTIONS)


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a hostile ``__reduce__`` would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def crafted_blob(marker: str) -> bytes:
    """A torch.save file whose unpickling (without weights_only) creates ``marker``."""
    buf = io.BytesIO()
    torch.save({"step": 5, "model": Payload(marker)}, buf)
    return buf.getvalue()


def interrupted_store(path: Path) -> int:
    """A store at ``path`` with one run interrupted at step 7 (checkpoint at step 5); its id."""
    def stop(step: int, loss: float) -> None:
        if step == 7:
            raise KeyboardInterrupt

    try:
        run(TASK, OPTIMIZER, store=path, on_step=stop, **KW)
    except KeyboardInterrupt:
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file: copies are whole
    (rid,) = conn.execute("SELECT id FROM runs").fetchone()
    conn.close()
    return rid


def copy_store(template: Path, dest: Path) -> Path:
    shutil.copyfile(template, dest)
    return dest


def dump(path: str | os.PathLike) -> list[str]:
    """Every row of every table (and the schema and version), as SQL text."""
    conn = sqlite3.connect(path)
    try:
        return [f"user_version={conn.execute('PRAGMA user_version').fetchone()[0]}", *conn.iterdump()]
    finally:
        conn.close()


def set_blob(path: Path, rid: int, blob: bytes) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE checkpoints SET blob = ? WHERE run_id = ?", (sqlite3.Binary(blob), rid))
    conn.close()


def execute(path: Path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()
