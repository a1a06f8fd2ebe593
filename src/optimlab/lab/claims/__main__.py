"""``python -m optimlab.lab.claims list`` / ``run ID [ID ...] [--fast] [--out DIR] [--seeds 0 1 2]``."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from . import list_claims, run_claim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimlab.lab.claims", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the claims")
    run = sub.add_parser("run", help="run claims and print their evidence")
    run.add_argument("ids", nargs="+", help="claim ids ('all' for every claim)")
    run.add_argument("--fast", action="store_true", help="the fast protocol (seconds) instead of the full one")
    run.add_argument("--out", default="claims-out", help="folder for figures and evidence JSON")
    run.add_argument("--seeds", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    if args.command == "list":
        for c in list_claims():
            state = "pending" if c.missing() else "ready"
            print(f"{c.id:38s} [{state}] {c.statement}")
        return 0
    ids = [c.id for c in list_claims()] if args.ids == ["all"] else args.ids
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for claim_id in ids:
        ev = run_claim(claim_id, fast=args.fast, out_dir=out, seeds=args.seeds)
        print(ev.summary(), flush=True)
        name = f"{claim_id}{'-fast' if args.fast else ''}.json"
        (out / name).write_text(json.dumps(ev.as_dict(), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
