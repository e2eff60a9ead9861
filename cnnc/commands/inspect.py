"""``cnnc inspect FILE``: the per-layer table of shapes, parameters, MACs and activation
memory, or the same as JSON (a documented contract) or Graphviz DOT."""

from __future__ import annotations

import argparse
import json

from ..codegen.kernels.options import add_kernel_options, apply_kernel_options
from ..draw import cli as draw
from ..explain.claims import check, render
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from ..report import to_dot, to_json, to_table
from . import emit

FORMATS = {"table": to_table, "json": to_json, "dot": to_dot}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="show every layer's shape, parameters, MACs and activation memory",
        description="Parse FILE and print one row per layer (output shape, parameters, multiply-accumulates, "
        "activation memory in float32) with totals; --format json gives exact integers, --format dot a "
        "Graphviz graph whose edges carry their shapes, --format svg a picture drawn by cnnc itself and "
        "--format html a self-contained page around it.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--format", "-f", choices=sorted([*FORMATS, *draw.DRAWN]), default="table",
                   help="output format (default: table); svg: a picture of the graph coloured by cost, html: one "
                   "self-contained page with the picture, the sortable table, the totals and the pass report")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    add_pass_options(p, default_level=0)
    draw.add_inspect_options(p)
    add_kernel_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g0 = load(args.file)
    claims = check(g0)  # on the source's graph: a pass may merge or rename the layers a claim names
    g = apply_kernel_options(apply_pass_options(g0, args), args)
    if args.format in draw.DRAWN:
        text = draw.render(g0, g, args)
    else:
        draw.check_unused(args)
        text = FORMATS[args.format](g)
    if claims and args.format == "table":
        text += "claims:\n" + render(claims)
    elif claims and args.format == "json":
        doc = json.loads(text)
        doc["claims"] = [r.as_dict() for r in claims]
        text = json.dumps(doc, indent=2) + "\n"
    emit(text, args.output)
    return 0
