"""RunStore: the lab's run database, one SQLite file (stdlib ``sqlite3``).

Tables:

* ``runs``: one row per run -- task, task options (JSON), optimizer, hyperparameters (JSON), seed,
  step budget, status (``running | interrupted | finished | failed``), created / finished times
  (Unix seconds), the code version (``git describe`` of the checkout, else the package version),
  torch and Python versions, the machine (platform and CPU count), torch threads, error text.
* ``metrics``: ``(run_id, step, name, value)``; ``step`` counts completed optimizer steps.
  NaN and infinities are stored as text so they round-trip (SQLite turns a NaN REAL into NULL).
* ``checkpoints``: the latest checkpoint of a run only (``torch.save`` bytes of model and optimizer
  state and the RNG states); saving one replaces the previous one.

Every write is one transaction (``with conn:``): the metrics of a step, or a checkpoint together
with the metrics logged since the previous one, commit together or not at all. The file is opened
in WAL mode so readers (a report, a sweep on another process) do not block the writer.
The schema version is kept in ``PRAGMA user_version``; a file with another version, or a file
that is not a SQLite database, is refused with a ``ValueError`` naming the path.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
import time
from typing import Any, Iterable, Mapping

__all__ = ["RunStore", "STATUSES", "SCHEMA_VERSION", "canonical_json", "environment"]

SCHEMA_VERSION = 1
STATUSES = ("running", "interrupted", "finished", "failed")
DEFAULT_PATH = "./optimlab-runs/runs.db"

_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    task_options TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    hparams TEXT NOT NULL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    code_version TEXT,
    torch_version TEXT,
    python_version TEXT,
    machine TEXT,
    threads INTEGER,
    error TEXT
);
CREATE INDEX runs_key ON runs (task, optimizer, seed, steps);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    blob BLOB NOT NULL
);
"""
_TABLES = {"runs", "metrics", "checkpoints"}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and tuples as lists: equal configurations give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r} ({type(value).__name__})")


_CODE_VERSION: str | None = None


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout holding optimlab, else its version."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        from optimlab import __version__
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=here,
                                 capture_output=True, text=True, timeout=5)
            text = out.stdout.strip()
            _CODE_VERSION = f"{__version__}+git.{text}" if out.returncode == 0 and text else __version__
        except (OSError, subprocess.SubprocessError):
            _CODE_VERSION = __version__
    return _CODE_VERSION


def environment() -> dict[str, str]:
    """Code, torch and Python versions and the machine, as recorded with each run."""
    import torch
    return {"code_version": code_version(), "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "machine": f"{platform.platform()}; {platform.machine()}; {os.cpu_count()} cpus"}


def _encode(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf'


def _decode(value: Any) -> float:
    return float(value) if value is not None else math.nan


class RunStore:
    """The run database at ``path`` (created with its folder when missing); ``":memory:"`` keeps
    everything in this process only."""

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            if getattr(self, "conn", None) is not None:
                self.conn.close()
            raise ValueError(f"RunStore: {self.path!r} is not a usable optimlab run database "
                             f"({e})") from None

    def _init_schema(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if version == 0 and not tables:
            if self.path != ":memory:":
                self.conn.execute("PRAGMA journal_mode = WAL")
            with self.conn:
                self.conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
            return
        if version != SCHEMA_VERSION or not _TABLES <= tables:
            self.conn.close()
            raise ValueError(
                f"RunStore: {self.path!r} has schema version {version} with tables "
                f"{sorted(tables)}; this optimlab reads schema version {SCHEMA_VERSION} "
                f"(tables {sorted(_TABLES)}). Use another path, or move the old file away.")
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.path!r})"

    # -- runs ------------------------------------------------------------------------------------
    def create_run(self, task: str, task_options: Mapping[str, Any], optimizer: str,
                   hparams: Mapping[str, Any], seed: int, steps: int, *, threads: int = 1,
                   env: Mapping[str, str] | None = None) -> int:
        """A new run with status ``running``; returns its id."""
        env = dict(environment() if env is None else env)
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (task, task_options, optimizer, hparams, seed, steps, status, "
                "created, code_version, torch_version, python_version, machine, threads) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (task, canonical_json(dict(task_options)), optimizer, canonical_json(dict(hparams)),
                 int(seed), int(steps), time.time(), env.get("code_version"),
                 env.get("torch_version"), env.get("python_version"), env.get("machine"),
                 int(threads)))
        return int(cur.lastrowid)

    def get_run(self, run_id: int) -> dict[str, Any]:
        """The run's row as a dict (``task_options`` and ``hparams`` decoded); ValueError if absent."""
        self.conn.row_factory = sqlite3.Row
        try:
            row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        finally:
            self.conn.row_factory = None
        if row is None:
            raise ValueError(f"RunStore {self.path!r}: no run with id {run_id!r}")
        out = dict(row)
        out["task_options"] = json.loads(out["task_options"])
        out["hparams"] = json.loads(out["hparams"])
        return out

    def find_runs(self, task: str | None = None, optimizer: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        """Runs matching every filter given, oldest first."""
        if status is not None:
            self._check_status(status)
        where, args = [], []
        for column, value in (("task", task), ("optimizer", optimizer), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT id FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [self.get_run(r[0]) for r in self.conn.execute(sql, args).fetchall()]

    def find_matching(self, task: str, options: Mapping[str, Any], optimizer: str,
                      hparams: Mapping[str, Any], seed: int, steps: int) -> dict[str, Any] | None:
        """The run to reuse for this exact configuration, or None: the newest finished one, else
        the newest failed one (a deterministic run fails the same way again), else the newest
        interrupted or running one (resumable from its checkpoint). Options and hyperparameters
        compare as canonical JSON."""
        rows = self.conn.execute(
            "SELECT id, status FROM runs WHERE task = ? AND task_options = ? AND optimizer = ? "
            "AND hparams = ? AND seed = ? AND steps = ? ORDER BY id DESC",
            (task, canonical_json(dict(options)), optimizer, canonical_json(dict(hparams)),
             int(seed), int(steps))).fetchall()
        for wanted in (("finished",), ("failed",), ("interrupted", "running")):
            for run_id, status in rows:
                if status in wanted:
                    return self.get_run(run_id)
        return None

    def _set_status(self, run_id: int, status: str, error: str | None = None) -> None:
        self._check_status(status)
        finished = time.time() if status in ("finished", "failed") else None
        with self.conn:
            cur = self.conn.execute("UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?",
                                    (status, finished, error, int(run_id)))
        if cur.rowcount == 0:
            raise ValueError(f"RunStore {self.path!r}: no run with id {run_id!r}")

    def finish(self, run_id: int) -> None:
        self._set_status(run_id, "finished")

    def mark_failed(self, run_id: int, error: str) -> None:
        self._set_status(run_id, "failed", str(error))

    def mark_interrupted(self, run_id: int) -> None:
        self._set_status(run_id, "interrupted")

    def mark_running(self, run_id: int) -> None:
        self._set_status(run_id, "running")

    def delete_run(self, run_id: int) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"RunStore: status must be one of {STATUSES}, got {status!r}")

    # -- metrics ---------------------------------------------------------------------------------
    def _insert_metrics(self, run_id: int, rows: Iterable[tuple[int, str, float]]) -> None:
        # A generator: a bad value met mid-way raises inside the transaction, which rolls back.
        rows = ((int(run_id), int(step), str(name), _encode(value)) for step, name, value in rows)
        self.conn.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)", rows)

    def log_metrics(self, run_id: int, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` (name -> number) at ``step``, all or nothing."""
        with self.conn:
            self._insert_metrics(run_id, ((step, k, v) for k, v in values.items()))

    def log_many(self, run_id: int, rows: Iterable[tuple[int, str, float]]) -> None:
        """Record ``(step, name, value)`` rows in one transaction."""
        with self.conn:
            self._insert_metrics(run_id, rows)

    def metrics(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        """name -> [(step, value), ...] in step order."""
        out: dict[str, list[tuple[int, float]]] = {}
        for step, name, value in self.conn.execute(
                "SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY name, step",
                (int(run_id),)):
            out.setdefault(name, []).append((int(step), _decode(value)))
        return out

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, run_id: int, step: int, blob: bytes,
                        metrics: Iterable[tuple[int, str, float]] = ()) -> None:
        """Replace the run's checkpoint with ``blob`` taken at ``step``, and record ``metrics``
        (``(step, name, value)`` rows) in the same transaction, so the stored metrics and the
        checkpoint always describe the same point of the run."""
        with self.conn:
            self._insert_metrics(run_id, metrics)
            self.conn.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, blob) VALUES (?, ?, ?)",
                              (int(run_id), int(step), sqlite3.Binary(blob)))

    def load_checkpoint(self, run_id: int) -> tuple[int, bytes] | None:
        """``(step, blob)`` of the run's latest checkpoint, or None."""
        row = self.conn.execute("SELECT step, blob FROM checkpoints WHERE run_id = ?",
                                (int(run_id),)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def truncate_metrics(self, run_id: int, after_step: int) -> None:
        """Drop the run's metrics logged after ``after_step`` (before resuming from there)."""
        with self.conn:
            self.conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?",
                              (int(run_id), int(after_step)))


# -- added by the lab-runs work (issue 9): finished runs do not keep their checkpoint ----------------
def compact(store: RunStore) -> None:
    """Give the space of deleted rows (dropped checkpoints) back to the file system (``VACUUM``)."""
    store.conn.execute("VACUUM")


def drop_checkpoint(store: RunStore, run_id: int) -> None:
    """Delete the checkpoint of run ``run_id`` (its metrics stay); nothing happens when it has none."""
    with store.conn:
        store.conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (int(run_id),))
