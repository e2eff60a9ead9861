"""``cnnc tune FILE``: measure the CPU conv strategies on a network's layer shapes and record the fastest."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..codegen.kernels import STRATEGIES, shape_of_node, tune
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from . import positive
from .bench import _batches


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="time every CPU conv strategy on a network's layer shapes; record the fastest",
        description="Run the passes on FILE (as `cnnc compile`), then time every eligible CPU conv strategy "
        f"({', '.join(STRATEGIES)}) on each distinct conv shape, through the kernels a generated module runs, at "
        "each batch size, and write the fastest per shape (least total time over the batch sizes) to a JSON table. "
        "`cnnc compile/inspect/bench --tuned TABLE` then use those choices instead of the cost model's. An "
        "existing table is merged into (shapes measured now replace theirs), so one table "
        "can hold the shapes of several networks. Timings are only as good as the machine is quiet.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("-o", "--output", default="cnnc-tune.json", metavar="TABLE.json",
                   help="the table to write or merge into (default: cnnc-tune.json)")
    p.add_argument("--batch", type=_batches, default=[1, 8], metavar="N[,N...]",
                   help="batch sizes to time each strategy at (default: 1,8)")
    p.add_argument("--threads", type=positive, default=None,
                   help="threads of the kernels (default: all cores); tune with the threads you will run with")
    p.add_argument("--seconds", type=float, default=0.2,
                   help="minimum time per (shape, strategy, batch), at least 3 calls (default: 0.2)")
    add_pass_options(p, default_level=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = apply_pass_options(load(args.file), args)
    net = g.graph.get("name") or Path(args.file).stem
    shapes: dict = {}
    for n in sorted(g.nodes):
        if g.nodes[n]["op"].kind == "conv":
            shapes.setdefault(shape_of_node(g, n), f"{net}:{n}")
    if not shapes:
        print(f"{net}: no conv layers, nothing to tune", file=sys.stderr)
        return 0
    old = tune.read(args.output) if Path(args.output).exists() else None
    threads = args.threads or len(os.sched_getaffinity(0))
    print(f"tuning {len(shapes)} conv shapes of {net} at batch {','.join(map(str, args.batch))}, {threads} threads "
          f"(ms per call; * fastest)", file=sys.stderr)
    doc = tune.measure(shapes, args.batch, threads, args.seconds, log=lambda s: print(s, file=sys.stderr))
    differ = [k for k, e in doc["shapes"].items() if e["choice"] != e["model"]]
    saved = sum(sum(e["ms"][e["model"]]) - sum(e["ms"][e["choice"]]) for e in doc["shapes"].values())
    if old is not None:
        doc = tune.merge(old, doc)
    tune.write(doc, args.output)
    print(f"wrote {args.output}: {len(shapes)} shapes measured; the measured choice differs from the cost model's "
          f"on {len(differ)} ({saved:.3f} ms per call saved at batch {'+'.join(map(str, args.batch))})")
    return 0
