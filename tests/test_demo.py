import json
from pathlib import Path

from optimlab.demo import OPTIMIZERS, SETTINGS, main, tuned_table
from optimlab.lab.compare import _short


def test_the_shipped_tuned_lr_table_covers_the_demo():
    table = tuned_table()
    assert table["command"].startswith("python -m optimlab.demo --retune")
    for task in SETTINGS:
        for name in OPTIMIZERS:
            row = table["tasks"][task][name]
            assert row["lr"] in row["grid"] and len(row["scores"]) == len(row["grid"]) and row["seed"] == 1000
            assert row["at_edge"] in (None, "low", "high")
            assert row["steps"] == SETTINGS[task]["steps"]


def test_demo_compares_at_tuned_lrs_and_writes_a_report(tmp_path, capsys):
    db, out = tmp_path / "demo.db", tmp_path / "report"
    main(["--tasks", "digits_mlp", "--steps", "20", "--seeds", "2", "--workers", "2", "--db", str(db),
          "--out", str(out)])
    text = capsys.readouterr().out
    lrs = tuned_table()["tasks"]["digits_mlp"]
    for name in OPTIMIZERS:
        row = next(line for line in text.splitlines() if line.startswith(name + "("))
        assert "2/2" in row and f"lr={_short(lrs[name]['lr'])}" in row, row
    assert "target 0.97 (the task's)" in text and "vs base" in text
    html = Path(out / "report.html")
    assert html.exists() and "data:image/png;base64" in html.read_text()
    assert f"report: {html.resolve()}" in text
