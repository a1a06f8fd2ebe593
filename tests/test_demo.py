from optimlab.demo import main


def test_demo_prints_a_row_per_optimizer(capsys):
    main(["--steps", "20", "--seeds", "2", "--optimizers", "adamw,muon"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["adamw"], ["muon"])]
    assert [r[0] for r in rows] == ["adamw", "muon"]
    for r in rows:
        loss, acc = float(r[1]), float(r[4].rstrip("%"))
        assert 0 < loss < 2.3 and 10 < acc <= 100  # better than chance after 20 steps
