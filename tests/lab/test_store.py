"""RunStore: round trip, transactions, schema and bad-input errors."""

from __future__ import annotations

import math
import sqlite3

import pytest

from optimlab.lab.store import SCHEMA_VERSION, RunStore


def _new_run(store: RunStore, **kw) -> int:
    args = dict(task="quadratic", task_options={"dim": 4, "rotate": True}, optimizer="adamw",
                hparams={"lr": 0.1}, seed=0, steps=10)
    args.update(kw)
    return store.create_run(**args, threads=1)


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "runs.db"
    with RunStore(path) as store:
        rid = _new_run(store)
        store.log_metrics(rid, 1, {"loss": 2.5, "eval_loss": math.nan})
        store.log_metrics(rid, 2, {"loss": 1.5, "eval_loss": math.inf})
        store.save_checkpoint(rid, 2, b"first", [(2, "extra", 7.0)])
        store.save_checkpoint(rid, 3, b"second")
        store.finish(rid)
    with RunStore(path) as store:  # persisted, reopened
        row = store.get_run(rid)
        assert row["status"] == "finished" and row["finished"] >= row["created"]
        assert row["task_options"] == {"dim": 4, "rotate": True} and row["hparams"] == {"lr": 0.1}
        assert row["threads"] == 1 and row["torch_version"] and row["python_version"]
        assert row["code_version"] and row["machine"]
        m = store.metrics(rid)
        assert m["loss"] == [(1, 2.5), (2, 1.5)] and m["extra"] == [(2, 7.0)]
        assert math.isnan(m["eval_loss"][0][1]) and m["eval_loss"][1] == (2, math.inf)
        assert store.load_checkpoint(rid) == (3, b"second")  # only the latest is kept
        assert store.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 1
        assert [r["id"] for r in store.find_runs(task="quadratic", status="finished")] == [rid]
        assert store.find_runs(optimizer="sgd") == []
        # options compare as canonical JSON: key order does not matter
        match = store.find_matching("quadratic", {"rotate": True, "dim": 4}, "adamw", {"lr": 0.1}, 0, 10)
        assert match["id"] == rid
        assert store.find_matching("quadratic", {"dim": 4, "rotate": True}, "adamw", {"lr": 0.1}, 1, 10) is None


def test_find_matching_prefers_finished_then_resumable(tmp_path):
    with RunStore(tmp_path / "r.db") as store:
        a = _new_run(store)
        store.mark_interrupted(a)
        key = ("quadratic", {"dim": 4, "rotate": True}, "adamw", {"lr": 0.1}, 0, 10)
        assert store.find_matching(*key)["id"] == a
        b = _new_run(store)
        store.finish(b)
        c = _new_run(store)
        store.mark_interrupted(c)
        assert store.find_matching(*key)["id"] == b
        store.mark_failed(b, "boom")
        assert store.get_run(b)["error"] == "boom"
        assert store.find_matching(*key)["id"] == b  # failed beats resumable


def test_writes_are_transactional(tmp_path):
    with RunStore(tmp_path / "r.db") as store:
        rid = _new_run(store)
        store.log_metrics(rid, 1, {"loss": 1.0})
        # the checkpoint write fails after the metrics were inserted: nothing commits
        with pytest.raises(TypeError):
            store.save_checkpoint(rid, 2, None, [(2, "loss", 0.5), (2, "eval_loss", 0.4)])
        assert store.metrics(rid) == {"loss": [(1, 1.0)]}
        assert store.load_checkpoint(rid) is None

        class Bad(dict):  # a value that fails while the step's metrics are being written
            def items(self):
                yield "loss", 0.5
                yield "eval_loss", object()
        with pytest.raises(TypeError):
            store.log_metrics(rid, 2, Bad())
        assert store.metrics(rid) == {"loss": [(1, 1.0)]}


def test_truncate_metrics(tmp_path):
    with RunStore(tmp_path / "r.db") as store:
        rid = _new_run(store)
        for s in range(1, 6):
            store.log_metrics(rid, s, {"loss": float(s)})
        store.truncate_metrics(rid, 3)
        assert store.metrics(rid)["loss"] == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"old\.db.*schema version 2"):
        RunStore(path)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"other\.db.*schema version 0"):
        RunStore(path)


def test_corrupted_file_is_refused(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(ValueError, match=r"garbage\.db.*not a usable optimlab run database"):
        RunStore(path)


@pytest.mark.parametrize("call, match", [
    (lambda s, rid: s.find_runs(status="done"), r"status must be one of .*'done'"),
    (lambda s, rid: s._set_status(rid, "paused"), r"status must be one of .*'paused'"),
    (lambda s, rid: s.get_run(999), r"no run with id 999"),
    (lambda s, rid: s.finish(999), r"no run with id 999"),
])
def test_bad_input(tmp_path, call, match):
    with RunStore(tmp_path / "r.db") as store:
        rid = _new_run(store)
        with pytest.raises(ValueError, match=match):
            call(store, rid)


def test_unserialisable_options_are_refused(tmp_path):
    with RunStore(tmp_path / "r.db") as store:
        with pytest.raises(TypeError, match="not JSON serialisable"):
            _new_run(store, hparams={"lr": object()})
        assert store.find_runs() == []
