"""The pass options shared by ``cnnc inspect`` and ``cnnc compile``.

``add_pass_options(parser)`` adds ``-O0|-O1``, ``--pass NAME[:key=value,...]`` (repeatable),
``--verify``, ``--dump-after PASS|all`` and ``--dump-format text|json``;
``apply_pass_options(g, args)`` runs the pass manager accordingly. Dumps and the passes'
reports (bottleneck insertions, peak activation memory before/after the memory plan) go
to standard error, so that a command's own output (a table, JSON) stays clean.
"""

from __future__ import annotations

import argparse
import sys

import networkx as nx

from . import manager


def _pass_help() -> str:
    lines = []
    for name in manager.ORDER:
        mod = manager.get(name)
        opts = ", ".join(f"{k}={d!r}" for k, (_, d, _h) in mod.OPTIONS.items())
        tag = "" if mod.PRESERVES_VALUES else " [changes the architecture]"
        lines.append(f"{name}{tag}{' (' + opts + ')' if opts else ''}")
    return "; ".join(lines)


def add_pass_options(parser: argparse.ArgumentParser, default_level: int | None = 1) -> None:
    """Add the optimisation options to ``parser`` (``default_level``: the level without ``-O``)."""
    g = parser.add_argument_group("optimisation passes")
    g.add_argument("-O", dest="opt_level", type=int, choices=manager.LEVELS, default=default_level,
                   metavar="LEVEL",
                   help=f"-O0: no passes; -O1: every value-preserving pass ({', '.join(manager.level_passes(1))})"
                   + (f" (default: -O{default_level})" if default_level is not None
                      else " (default: -O0 for the reference executor, -O1 for compiled modules)"))
    g.add_argument("--pass", dest="passes", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="also run this pass (repeatable), e.g. --pass bottleneck:ratio=0.25,min_saving=2. "
                   "Passes: " + _pass_help())
    g.add_argument("--verify", action="store_true",
                   help="check the graph after every pass (a failure names the pass)")
    g.add_argument("--dump-after", metavar="PASS|all",
                   help="print the graph after this pass (or after every pass) to standard error")
    g.add_argument("--dump-format", choices=("text", "json"), default="text",
                   help="format of --dump-after (default: .cnn-like text)")


def _stderr(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def apply_pass_options(g: nx.DiGraph, args: argparse.Namespace) -> nx.DiGraph:
    """Run the passes ``args`` (from :func:`add_pass_options`) ask for on ``g``; return the new graph."""
    return manager.run_pipeline(
        g,
        level=getattr(args, "opt_level", 1),
        passes=list(getattr(args, "passes", None) or []),
        verify=bool(getattr(args, "verify", False)),
        dump_after=getattr(args, "dump_after", None),
        dump=_stderr,
        dump_format=getattr(args, "dump_format", "text"),
        log=_stderr,
    )
