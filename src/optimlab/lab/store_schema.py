"""The run database's schema: its tables, and creating or checking it in one transaction.

``init_schema`` runs under ``BEGIN IMMEDIATE``: the write lock is taken before the file is
inspected, so of several processes opening a new file at once exactly one creates the schema and
the others (waiting on the lock, up to the connection's timeout) find it complete; a process killed
mid-way leaves no partial schema, because the transaction rolls back. Every statement is
idempotent, so a file left half-created by an older optimlab (version 0, some of these tables with
the expected columns) is completed; any other content, or another version, is refused with a
ValueError naming the path.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["SCHEMA_VERSION", "init_schema", "set_wal"]

SCHEMA_VERSION = 1

_SCHEMA_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS runs (
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
)""",
    "CREATE INDEX IF NOT EXISTS runs_key ON runs (task, optimizer, seed, steps)",
    """CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value,
    PRIMARY KEY (run_id, name, step)
)""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    blob BLOB NOT NULL
)""",
)
_COLUMNS = {
    "runs": ["id", "task", "task_options", "optimizer", "hparams", "seed", "steps", "status", "created",
             "finished", "code_version", "torch_version", "python_version", "machine", "threads", "error"],
    "metrics": ["run_id", "step", "name", "value"],
    "checkpoints": ["run_id", "step", "blob"],
}
_TABLES = set(_COLUMNS)


def init_schema(conn: sqlite3.Connection, path: str) -> None:
    """Check the schema on ``conn`` (creating it in a new file) in one transaction; ValueError if foreign."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if version == 0 and tables <= _TABLES:
            _check_columns(conn, path, tables)  # an older partial schema is completed, a foreign one refused
            for statement in _SCHEMA_STATEMENTS:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            version, tables = SCHEMA_VERSION, set(_TABLES)
        _check_schema(conn, path, version, tables)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_schema(conn: sqlite3.Connection, path: str, version: int, tables: set[str]) -> None:
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"RunStore: {path!r} has schema version {version}, written by a newer optimlab; "
            f"this optimlab reads schema version {SCHEMA_VERSION}. Upgrade optimlab, or use "
            f"another path.")
    if version != SCHEMA_VERSION or not _TABLES <= tables:
        raise ValueError(
            f"RunStore: {path!r} has schema version {version} with tables "
            f"{sorted(tables)}; this optimlab reads schema version {SCHEMA_VERSION} "
            f"(tables {sorted(_TABLES)}). Use another path, or move the old file away.")
    _check_columns(conn, path, _TABLES)


def _check_columns(conn: sqlite3.Connection, path: str, tables: set[str]) -> None:
    for table in sorted(tables):
        columns = _COLUMNS[table]
        found = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        if found != columns:
            raise ValueError(f"RunStore: {path!r}: table {table!r} has columns {found}, "
                             f"expected {columns}. Use another path, or move the old file away.")


def set_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to write-ahead logging (readers do not block the writer)."""
    # Switching to WAL needs a moment alone with the file; when parallel openers collide,
    # SQLite may answer "locked" at once instead of waiting, so wait here.
    deadline = time.monotonic() + 30.0
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
