"""``--kernel NAME`` and ``--kernel LAYER=NAME``: forcing a conv strategy (``cnnc compile``, ``inspect``, ``bench``).

``--kernel NAME`` uses strategy NAME on every conv layer it is eligible for (the cost model picks for the others);
``--kernel LAYER=NAME`` on that one layer, which must be a conv of the graph after the passes (the names ``cnnc
inspect`` shows with the same options) and eligible, else a clear error. Per-layer entries win over the all-layers
one. ``--tuned FILE`` takes the choices a ``cnnc tune`` table measured for the layer shapes it holds (``--kernel``
wins over it; the cost model picks for shapes it lacks). The result is ``g.graph["kernels"] = {layer: strategy}``,
which the CPU backend and ``inspect`` honour.
"""

from __future__ import annotations

import argparse

import networkx as nx

from ...errors import InputError
from . import STRATEGIES, shape_of_node


def add_kernel_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--kernel`` to ``parser``."""
    names = "; ".join(f"{n}: {s.summary}" for n, s in STRATEGIES.items())
    parser.add_argument("--kernel", dest="kernels", action="append", default=[], metavar="[LAYER=]NAME",
                        help="force a CPU conv strategy on every eligible conv layer (NAME) or on one layer "
                        f"(LAYER=NAME; repeatable); default: the cost model's choice. Strategies: {names}")
    parser.add_argument("--tuned", metavar="TABLE.json",
                        help="use the strategies a `cnnc tune` table measured fastest for the conv shapes it holds "
                        "(--kernel wins over it)")


def resolve(g: nx.DiGraph, specs: list[str]) -> dict[str, str]:
    """``{layer: strategy}`` for the ``--kernel`` values ``specs`` on graph ``g`` (an :class:`InputError` when a
    name is unknown, a layer is not a conv of ``g`` or a forced strategy is not eligible)."""
    convs = [n for n in g.nodes if g.nodes[n]["op"].kind == "conv"]
    everywhere: str | None = None
    per_layer: dict[str, str] = {}
    for spec in specs:
        layer, _, name = spec.rpartition("=")
        if name not in STRATEGIES:
            raise InputError(f"--kernel {spec}: unknown strategy {name!r}; strategies: {', '.join(STRATEGIES)}")
        if not layer:
            everywhere = name
            continue
        if layer not in convs:
            known = ", ".join(convs[:12]) + (", ..." if len(convs) > 12 else "")
            raise InputError(f"--kernel {spec}: {layer!r} is not a conv layer of {g.graph.get('name')!r} after the "
                             f"passes (see `cnnc inspect`); conv layers: {known or 'none'}")
        shape = shape_of_node(g, layer)
        why = STRATEGIES[name].eligible(shape)
        if why is not None:
            raise InputError(f"--kernel {spec}: layer {layer!r} ({shape.text()}) cannot use {name}: {why}")
        per_layer[layer] = name
    out: dict[str, str] = {}
    if everywhere is not None:
        out = {n: everywhere for n in convs if STRATEGIES[everywhere].eligible(shape_of_node(g, n)) is None}
        if not out:
            raise InputError(f"--kernel {everywhere}: no conv layer of {g.graph.get('name')!r} can use it "
                             f"({STRATEGIES[everywhere].summary})")
    out.update(per_layer)
    return out


def apply_kernel_options(g: nx.DiGraph, args: argparse.Namespace) -> nx.DiGraph:
    """Record the ``--kernel`` choices of ``args`` on ``g`` (returned, for chaining)."""
    from . import tune

    specs = list(getattr(args, "kernels", None) or [])
    chosen: dict[str, str] = {}
    if getattr(args, "tuned", None):
        convs = {n: shape_of_node(g, n) for n in g.nodes if g.nodes[n]["op"].kind == "conv"}
        chosen = tune.choices(tune.read(args.tuned), convs)
    chosen.update(resolve(g, specs) if specs else {})
    g.graph["kernels"] = chosen
    return g
