from pathlib import Path

from optimlab.demo import main


def test_demo_compares_and_writes_a_report(tmp_path, capsys):
    db, out = tmp_path / "demo.db", tmp_path / "report"
    main(["--tasks", "digits_mlp", "--steps", "20", "--seeds", "2", "--db", str(db), "--out", str(out)])
    text = capsys.readouterr().out
    for name in ("adamw", "lion", "muon", "trust_region", "kaon"):
        assert any(line.startswith(name) and "2/2" in line for line in text.splitlines()), name
    html = Path(out / "report.html")
    assert html.exists() and "data:image/png;base64" in html.read_text()
    assert f"report: {html.resolve()}" in text
