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
    with tqdm(ids, desc="claims", unit="claim", file=sys.stderr, disable=len(ids) < 2) as bar:
        for claim_id in bar:
            bar.set_postfix_str(claim_id)
            ev = run_claim(claim_id, fast=args.fast, out_dir=out, seeds=args.seeds)
            verdicts[claim_id] = ev.verdict
            bar.write(ev.summary())
            name = f"{claim_id}{'-fast' if args.fast else ''}.json"
            (out / name).write_text(json.dumps(ev.as_dict(), indent=1, default=str))
    if len(ids) > 1:
        print("\n" + "\n".join(f"{v:>14s}  {k}" for k, v in verdicts.items()))
    print(f"evidence (JSON) and figures (PNG): {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
