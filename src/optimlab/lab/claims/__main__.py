"""``python -m optimlab.lab.claims list`` / ``run ID [ID ...] | run --all [--fast] [--out DIR] [--seeds 0 1 2]``."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from . import get_claim, list_claims, run_claim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimlab.lab.claims", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the claims")
    run = sub.add_parser("run", help="run claims and print their evidence")
    run.add_argument("ids", nargs="*", help="claim ids")
    run.add_argument("--all", action="store_true", help="every registered claim (pending ones report what they need)")
    run.add_argument("--fast", action="store_true", help="the fast protocol (seconds) instead of the full one")
    run.add_argument("--out", default="claims-out", help="folder for figures and evidence JSON")
    run.add_argument("--seeds", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    if args.command == "list":
        for c in list_claims():
            state = "pending" if c.missing() else "ready"
            print(f"{c.id:38s} [{state}] {c.statement}")
        return 0
    if args.all or args.ids == ["all"]:
        ids = [c.id for c in list_claims()]
    elif args.ids:
        ids = args.ids
    else:
        parser.error("run: name claim ids or pass --all")
    for claim_id in ids:
        get_claim(claim_id)  # unknown ids fail before anything runs
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    verdicts: dict[str, str] = {}
    evidence = []
    with tqdm(ids, desc="claims", unit="claim", file=sys.stderr, disable=len(ids) < 2) as bar:
        for claim_id in bar:
            bar.set_postfix_str(claim_id)
            ev = run_claim(claim_id, fast=args.fast, out_dir=out, seeds=args.seeds)
            verdicts[claim_id] = ev.verdict
            evidence.append(ev)
            bar.write(ev.summary())
            name = f"{claim_id}{'-fast' if args.fast else ''}.json"
            (out / name).write_text(json.dumps(ev.as_dict(), indent=1, default=str))
    if len(ids) > 1:
        print("\n" + "\n".join(f"{v:>14s}  {k}" for k, v in verdicts.items()))
    if len(ids) > 1:
        (out / "index.html").write_text(html_page(evidence, out))
        print(f"one page with every verdict and figure: {(out / 'index.html').resolve()}")
    print(f"evidence (JSON) and figures (PNG): {out.resolve()}")
    return 0


def html_page(evidence: list, out: pathlib.Path) -> str:
    """One self-contained HTML page: a verdict table, then per claim its statement, margin, explanation and figure."""
    from html import escape

    colors = {"holds": "#d7f5d7", "does not hold": "#f8d7d7", "inconclusive": "#f8f0c8", "pending": "#e4e4e4"}
    rows, sections = [], []
    for ev in evidence:
        claim = get_claim(ev.claim_id)
        rows.append(f'<tr style="background:{colors.get(ev.verdict, "#fff")}"><td><a href="#{ev.claim_id}">'
                    f"{escape(ev.claim_id)}</a></td><td>{escape(ev.verdict)}</td><td>{ev.seconds:.1f} s</td></tr>")
        fig = ""
        if ev.figure_path:
            rel = pathlib.Path(ev.figure_path).resolve().relative_to(out.resolve()) \
                if pathlib.Path(ev.figure_path).resolve().is_relative_to(out.resolve()) else ev.figure_path
            fig = f'<img src="{escape(str(rel))}" style="max-width:100%">'
        sections.append(f'<h2 id="{ev.claim_id}">{escape(ev.claim_id)}: {escape(ev.verdict)}</h2>'
                        f"<p><b>{escape(claim.paper)}</b> (arXiv {escape(claim.arxiv or 'n/a')})</p>"
                        f"<p>{escape(claim.statement)}</p><p><i>margin:</i> {escape(ev.margin)}</p>"
                        f"<p>{escape(ev.explanation)}</p>{fig}")
    mode = "fast" if evidence and evidence[0].fast else "full"
    return ("<!doctype html><meta charset='utf-8'><title>optimlab claims</title>"
            f"<h1>optimlab claims ({mode} protocols)</h1><table border=1 cellpadding=4>"
            "<tr><th>claim</th><th>verdict</th><th>time</th></tr>" + "".join(rows) + "</table>" + "".join(sections))


if __name__ == "__main__":
    sys.exit(main())
