"""Command line: ``optimlab list``, ``optimlab describe NAME``."""

from __future__ import annotations

import argparse
import sys

from .core.registry import available, describe, get_recipe


def _list(args: argparse.Namespace) -> int:
    names = available()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {get_recipe(name).summary}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    print(describe(args.name))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optimlab", description="Modern optimizers for PyTorch, and the lab.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered optimizers").set_defaults(func=_list)
    d = sub.add_parser("describe", help="update rule, defaults with units, paper, state bytes")
    d.add_argument("name")
    d.set_defaults(func=_describe)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"optimlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
