"""RunStore: the lab's run database, one SQLite file (stdlib ``sqlite3``).

Tables:

* ``runs``: one row per run -- task, task options (JSON), optimizer, hyperparameters (JSON), seed,
  step budget, status (``running | interrupted | finished | failed``), created / finished times
  (Unix seconds), the code version (``git describe`` of the checkout, else the package version),
  torch and Python versions, the machine (platform and CPU count), torch threads, error text.
* ``metrics``: ``(run_id, step, name, value)``; ``step`` counts completed optimizer steps.
  NaN and infinities are stored as text so they round-trip (SQLite turns a NaN REAL into NULL).
* ``checkpoints``: the latest checkpoint of a run only (bytes from :mod:`optimlab.lab.checkpoint`:
  tensors and plain data, loaded with ``weights_only=True``); saving one replaces the previous one.

Every write is one transaction (``with conn:``): the metrics of a step, or a checkpoint together
with the metrics logged since the previous one, commit together or not at all. The file is opened
in WAL mode so readers (a report, a sweep on another process) do not block the writer.
The schema is checked and created in one ``BEGIN IMMEDIATE`` transaction (:mod:`.store_schema`),
so parallel first writers on a new file all succeed and a kill mid-creation leaves a usable file.
The schema version is kept in ``PRAGMA user_version``; a file with another version (or other
columns), or a file that is not a SQLite database, is refused with a ``ValueError`` naming the path.
Rows read back are untrusted too: a value of the wrong type is a ``ValueError`` naming the run,
the column and the value.
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

from .store_schema import SCHEMA_VERSION, init_schema, set_wal

__all__ = ["RunStore", "STATUSES", "SCHEMA_VERSION", "canonical_json", "environment"]

STATUSES = ("running", "interrupted", "finished", "failed")
DEFAULT_PATH = "./optimlab-runs/runs.db"

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


def _decode(value: Any) -> float | None:
    """A stored metric value as a float, or None when it is not one _encode writes."""
    if value is None:
        return math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


class RunStore:
    """The run database at ``path`` (created with its folder when missing); ``":memory:"`` keeps
    everything in this process only."""

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
        self.conn = None
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0)
            self.conn.execute("PRAGMA foreign_keys = ON")
            init_schema(self.conn, self.path)
            if self.path != ":memory:":
                set_wal(self.conn)
        except BaseException as e:
            if self.conn is not None:
                self.conn.close()
            if isinstance(e, sqlite3.DatabaseError):
                raise ValueError(f"RunStore: {self.path!r} is not a usable optimlab run database "
                                 f"({e})") from None
            raise

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
        return self._check_run(dict(row))

    def _bad(self, run_id: Any, what: str, value: Any, expected: str) -> ValueError:
        text = repr(value)
        text = text if len(text) <= 80 else text[:80] + "..."
        return ValueError(f"RunStore {self.path!r}: run {run_id}: {what} must be {expected}, got {text}")

    def _check_run(self, out: dict[str, Any]) -> dict[str, Any]:
        # Rows may come from someone else's file: check what the lab relies on before using it.
        rid = out["id"]
        for column in ("task", "optimizer", "task_options", "hparams"):
            if not isinstance(out[column], str):
                raise self._bad(rid, column, out[column], "text")
        for column, lo in (("seed", 0), ("steps", 1)):
            if not isinstance(out[column], int) or out[column] < lo:
                raise self._bad(rid, column, out[column], f"an integer >= {lo}")
        if out["status"] not in STATUSES:
            raise self._bad(rid, "status", out["status"], f"one of {STATUSES}")
        if out["threads"] is not None and (not isinstance(out["threads"], int) or out["threads"] < 1):
            raise self._bad(rid, "threads", out["threads"], "an integer >= 1 or NULL")
        for column in ("task_options", "hparams"):
            try:
                value = json.loads(out[column])
            except ValueError:
                raise self._bad(rid, column, out[column], "a JSON object") from None
            if not isinstance(value, dict):
                raise self._bad(rid, column, out[column], "a JSON object")
            out[column] = value
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
        for run_id, status in rows:  # an unknown status must not be skipped silently
            if status not in STATUSES:
                raise self._bad(run_id, "status", status, f"one of {STATUSES}")
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

    def reset_run(self, run_id: int) -> None:
        """Discard the run's metrics and checkpoint and mark it ``running`` (one transaction), to
        train it again from step 0 under the same id."""
        with self.conn:
            cur = self.conn.execute("UPDATE runs SET status = 'running', finished = NULL, error = NULL "
                                    "WHERE id = ?", (int(run_id),))
            if cur.rowcount == 0:
                raise ValueError(f"RunStore {self.path!r}: no run with id {run_id!r}")
            self.conn.execute("DELETE FROM metrics WHERE run_id = ?", (int(run_id),))
            self.conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (int(run_id),))

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
            if not isinstance(step, int) or step < 0:
                raise self._bad(run_id, f"metric {name!r} step", step, "an integer >= 0")
            if not isinstance(name, str):
                raise self._bad(run_id, f"metric name at step {step}", name, "text")
            decoded = _decode(value)
            if decoded is None:
                raise self._bad(run_id, f"metric {name!r} at step {step}", value,
                                "a number, NULL or one of 'nan', 'inf', '-inf'")
            out.setdefault(name, []).append((step, decoded))
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
        if row is None:
            return None
        if not isinstance(row[0], int) or row[0] < 0:
            raise self._bad(run_id, "checkpoint step", row[0], "an integer >= 0")
        if not isinstance(row[1], bytes):
            raise self._bad(run_id, "checkpoint blob", type(row[1]).__name__, "a BLOB")
        return row[0], row[1]

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
