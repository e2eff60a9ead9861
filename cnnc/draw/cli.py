"""The drawing options of ``cnnc inspect`` (``--format svg|html``), kept here so that the
command module only delegates."""

from __future__ import annotations

import argparse

import networkx as nx

from ..errors import CnncError
from . import diff_html, diff_svg, graph_html, graph_svg
from .layout import COLLAPSE_AT, METRICS

#: the formats drawn by this package
DRAWN = ("html", "svg")


def add_inspect_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pictures (--format svg or html)")
    g.add_argument("--color", choices=sorted(METRICS), default=None,
                   help="colour each box by its share of the network's MACs, parameters or activation memory "
                   "(default: macs)")
    c = g.add_mutually_exclusive_group()
    c.add_argument("--collapse", dest="collapse", action="store_const", const=True, default=None,
                   help="draw each block instance as one box with its totals (the default past "
                   f"{COLLAPSE_AT} layers when the network has blocks)")
    c.add_argument("--expand", dest="collapse", action="store_const", const=False,
                   help="draw every layer, block instances framed")
    g.add_argument("--diff", action="store_true",
                   help="draw the network before and after the passes (-O1, --pass ...) side by side, with "
                   "the MACs of each and the inserted or changed layers outlined")


def render(before: nx.DiGraph, after: nx.DiGraph, args: argparse.Namespace) -> str:
    """The SVG or HTML ``cnnc inspect`` prints: ``after`` (the graph after the passes), or with
    ``--diff`` ``before`` (the source graph) beside it."""
    metric = args.color or "macs"
    if args.diff:
        if not after.graph.get("passes"):
            raise CnncError("--diff draws the network before and after passes: give -O1 or --pass NAME")
        return (diff_svg if args.format == "svg" else diff_html)(before, after, metric, args.collapse)
    return (graph_svg if args.format == "svg" else graph_html)(after, metric, args.collapse)


def check_unused(args: argparse.Namespace) -> None:
    """Refuse drawing options with a format that does not draw (rather than ignore them)."""
    used = [o for o, v in (("--color", args.color), ("--collapse/--expand", args.collapse), ("--diff", args.diff))
            if v not in (None, False)]
    if used:
        verb = "applies" if len(used) == 1 else "apply"
        raise CnncError(f"{', '.join(used)} {verb} only to --format svg or html (got --format {args.format})")
