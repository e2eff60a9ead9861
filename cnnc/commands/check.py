"""``cnnc check FILE``: check the file's ``expect`` claims (published numbers) against what cnnc
computes, and say why a failing one fails where the cause can be verified."""

from __future__ import annotations

import argparse
import json
import sys

from ..explain.claims import check, render
from ..frontend import load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check the published numbers a .cnn file claims (`expect params = 138M`)",
        description="Parse FILE and check each `expect` statement: the value cnnc computes, whether the claim "
        "holds (within the paper's rounding: 138M means within half a unit of the last digit, an exact integer "
        "means exact) and, for a failing claim, the cause where cnnc can verify one (biases counted or not, "
        "one layer counted twice, floor versus ceil rounding, the input counted or not, ...). A failing claim "
        "is a warning (exit 0) unless --strict (exit 2).",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--strict", action="store_true", help="exit 2 when any claim fails")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = load(args.file)
    results = check(g)
    if args.format == "json":
        doc = {"network": g.graph["name"], "source": g.graph["source"], "claims": [r.as_dict() for r in results],
               "hold": sum(r.holds for r in results), "fail": sum(not r.holds for r in results)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif results:
        sys.stdout.write(render(results, strict=args.strict))
    else:
        sys.stdout.write(f"{args.file}: no claims (add `expect` statements, e.g. `expect params = 138M`)\n")
    return 2 if args.strict and any(not r.holds for r in results) else 0
