"""``cnnc inspect FILE``: the per-layer table of shapes, parameters, MACs and activation
memory, or the same as JSON (a documented contract) or Graphviz DOT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..codegen.kernels.options import add_kernel_options, apply_kernel_options
from ..errors import InputError
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from ..report import to_dot, to_json, to_table

FORMATS = {"table": to_table, "json": to_json, "dot": to_dot}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="show every layer's shape, parameters, MACs and activation memory",
        description="Parse FILE and print one row per layer (output shape, parameters, multiply-accumulates, "
        "activation memory in float32) with totals; --format json gives exact integers, --format dot a "
        "Graphviz graph whose edges carry their shapes.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--format", "-f", choices=sorted(FORMATS), default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    add_pass_options(p, default_level=0)
    add_kernel_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = apply_kernel_options(apply_pass_options(load(args.file), args), args)
    text = FORMATS[args.format](g)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write {args.output}: {e.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0
