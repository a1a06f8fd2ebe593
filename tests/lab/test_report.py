"""The report layer: the HTML page, the PNG figures and the terminal table from a store of short
real runs (plus synthetic runs that recorded a sharpness series), filters and their errors."""

from __future__ import annotations

import base64
import math
import re

import pytest
import torch

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

from optimlab.lab.report import ReportPaths, write_report  # noqa: E402
from optimlab.lab.runner import run  # noqa: E402
from optimlab.lab.store import RunStore  # noqa: E402
from optimlab.lab.tasks import get_task  # noqa: E402

QUAD = {"dim": 20}
PNG = b"\x89PNG\r\n\x1a\n"
ADAMW = "adamw(lr=0.05, weight_decay=0)"  # rounded as labels show hyperparameters
SGD = ["sgd(lr=0.1)", "sgd(lr=0.3)", "sgd(lr=1.5)"]  # three lrs: one sweep, one row
SECTIONS = ["Loss curves", "Eval metrics", "Steps and time to target",
            "Final metrics", "Sensitivity", "Sharpness", "Provenance"]
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|nan|inf", re.I)


def _synthetic_sharpness_run(db: RunStore, seed: int) -> int:
    """A finished sgd(lr=1.5) run whose metrics include ``sharpness`` (as a diagnostics hook
    would record it): progressive sharpening towards 2/lr."""
    options = get_task("quadratic", **QUAD).options  # what run() records, so it groups with them
    run_id = db.create_run("quadratic", options, "sgd", {"lr": 1.5}, seed, 30)
    for step in range(31):
        values = {"sharpness": (2 / 1.5) * (1 - math.exp(-step / 6)) + 0.02 * seed + 0.01}
        if step:
            values.update(loss=10 * 0.85 ** step * (1 + 0.1 * seed), step_ms=1.0 + 0.1 * seed,
                          opt_ms=0.5)
        if step % 5 == 0:
            values.update(eval_loss=10 * 0.85 ** step, distance=3 * 0.9 ** step,
                          grad_norm=2 * 0.9 ** step)
        if step == 30:
            values.update(state_bytes=0, n_params=20)
        db.log_metrics(run_id, step, values)
    db.finish(run_id)
    return run_id


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "runs.db"
    with RunStore(path) as db:
        kw = dict(steps=30, eval_every=5, task_options=QUAD, store=db)
        for seed in (0, 1):
            run("quadratic", "adamw", seed=seed, **kw)
            for lr in (0.1, 0.3):
                run("quadratic", "sgd", hparams={"lr": lr}, seed=seed, **kw)
            _synthetic_sharpness_run(db, seed)
        # The same configuration and seed again: the report counts the newest run only.
        run("quadratic", "adamw", seed=0, resume=False, **kw)
        # A second configuration of the same task: its own section.
        run("quadratic", "adamw", steps=10, task_options={"dim": 10}, store=db)
        # Unfinished runs are left out of reports.
        db.create_run("quadratic", get_task("quadratic", **QUAD).options, "lion", {}, 0, 30)
    return path


def _text(page: str) -> str:
    """The page without its inline images (base64 text could hold any short word)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def _check_png(path_or_bytes) -> None:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    assert data[:8] == PNG


def test_report_page_figures_and_table(store_path, tmp_path):
    out = tmp_path / "out" / "nested"
    paths = write_report(store_path, out, title="Quadratic check")
    assert isinstance(paths, ReportPaths) and paths.html == out / "report.html"
    assert paths.runs == 9 and len(paths.tasks) == 2
    page = paths.html.read_text(encoding="utf-8")
    text = _text(page)
    assert "<title>Quadratic check</title>" in text
    for title in SECTIONS:
        assert title in text, title
    assert ADAMW in text and "lion" not in text  # lion never finished
    # The sgd lr sweep is one row (its best value) and one sensitivity curve of three values.
    sweep_rows = [line for line in paths.table.splitlines() if line.startswith("sgd(")]
    assert len(sweep_rows) == 1 and "[best of 3 lr" in sweep_rows[0], paths.table
    assert "sgd: lr at 3 values" in text
    # The header says what was selected in words, never a raw Python value.
    assert "all tasks, all optimizers" in text and "None" not in text

    # Self-contained: every image inline, nothing fetched.
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(paths.figures) >= 6
    for b64 in images:
        _check_png(base64.b64decode(b64))

    names = {p.name for p in paths.figures}
    for kind in ("loss", "eval", "sensitivity", "sharpness"):
        assert any(n.endswith(f"_{kind}.png") for n in names), kind
    for path in paths.figures:
        assert path.parent == out and path.is_file()
        _check_png(path)
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100

    # Provenance of the runs is on the page.
    with RunStore(store_path) as db:
        row = db.find_runs(status="finished")[0]
    assert row["code_version"] in text and torch.__version__ in text
    assert "threads" in text and row["machine"].split(";")[0] in text

    # Terminal table: every row with its seeds and finite numbers, 95% t intervals, <= 120 columns.
    lines = paths.table.splitlines()
    assert str(paths) == paths.table
    assert max(map(len, lines)) <= 120
    assert "95% t interval" in paths.table
    for line in (next(x for x in lines if x.startswith(ADAMW + " ")), sweep_rows[0]):
        numbers = [float(x) for x in NUMBER.findall(line.split("]")[-1][len(ADAMW):])]
        assert numbers and all(math.isfinite(x) for x in numbers), line
        assert re.search(r"\s2\s", line), line  # n seeds
    # The dim=10 configuration has one seed: "n = 1", never a zero spread.
    one_seed = paths.table.split("task quadratic (dim=10)")[1]
    assert "(n = 1)" in one_seed and "±" not in one_seed.split("\n", 3)[3]
    assert "eval_loss ≤ 0.001 (task)" in paths.table  # the task's own target, not the table's best


def test_filters_and_given_target(store_path, tmp_path):
    paths = write_report(store_path, tmp_path / "sgd", task="quadratic", optimizers="sgd",
                         target=1e9)
    page = _text(paths.html.read_text(encoding="utf-8"))
    assert ADAMW not in page and ADAMW not in paths.table and paths.runs == 6
    assert paths.tasks == ["quadratic"]  # only the dim=20 configuration has sgd runs
    assert "eval_loss ≤ 1.00e9 (given)" in paths.table
    (line,) = [x for x in paths.table.splitlines() if x.startswith("sgd(")]
    assert line.endswith("2/2") and "0 ± 0" in line  # reached at the step-0 evaluation

    with RunStore(store_path) as db:  # a RunStore is used as is (and left open)
        one = write_report(db, tmp_path / "one", optimizers=["sgd(lr=0.1)"])
        assert db.find_runs(status="finished")
    page = _text(one.html.read_text(encoding="utf-8"))
    assert "sgd(lr=0.1)" in page and "sgd(lr=0.3)" not in page
    assert "Sensitivity" not in page and "Sharpness" not in page  # one lr; no sharpness
    assert "Optimizer dynamics" in page  # the runner logs lr / grad_norm / update_norm (absent: test_report_groups)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"task": "nope"}, "task='nope'"),
    ({"optimizers": "nope"}, "optimizers='nope'"),
    ({"optimizers": ["sgd", "nope"]}, "no finished runs of 'nope'"),
    ({"optimizers": "lion"}, "optimizers='lion'"),  # exists, but never finished
    ({"task": "quadratic", "optimizers": []}, "optimizers must be"),
])
def test_bad_filter_names_store_and_filter(store_path, tmp_path, kwargs, fragment):
    with pytest.raises(ValueError, match=re.escape(str(store_path))) as info:
        write_report(store_path, tmp_path / "bad", **kwargs)
    assert fragment in str(info.value)
    assert not (tmp_path / "bad" / "report.html").exists()


def test_empty_or_missing_store(tmp_path):
    empty = tmp_path / "empty.db"
    RunStore(empty).close()
    with pytest.raises(ValueError, match=re.escape(str(empty)) + ".*no finished runs"):
        write_report(empty, tmp_path / "out")
    missing = tmp_path / "missing.db"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        write_report(missing, tmp_path / "out", task="quadratic")
    assert not missing.exists()
