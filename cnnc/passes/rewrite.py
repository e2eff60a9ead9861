"""Helpers every pass uses to build a new graph from an old one without mutating it.

A pass reads the old graph, produces a list of :class:`Node` records (fresh copies, in a
topological order), edits them, and calls :func:`build`, which makes a brand-new
``DiGraph`` with every shape and cost re-inferred and edges matching ``inputs``.

The memory plan (node ``buffer``, ``g.graph["buffers"]``, ``g.graph["memory"]``) describes one
exact graph, so :func:`build` drops it: only ``memplan`` (which runs last) leaves one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..cost import op_cost
from ..errors import GraphError, ShapeError, Span
from ..graph import ordered
from ..ops import Op
from ..shapes import infer_shape

#: node-data keys rebuilt by :func:`build` (everything else is carried in ``Node.extra``)
_CORE = ("op", "inputs", "shape", "cost", "span", "block")
#: annotations that describe one exact graph and go stale when a pass edits it
PLAN_NODE_KEYS = ("buffer",)
PLAN_GRAPH_KEYS = ("buffers", "memory")


@dataclass
class Node:
    """A mutable, fresh copy of one node's data (for a pass to edit)."""

    name: str
    op: Op
    inputs: list[str]
    span: Span | None = None
    block: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def nodes_of(g: nx.DiGraph) -> list[Node]:
    """Fresh copies of every node of ``g``, in topological (declaration) order."""
    out = []
    for n in ordered(g):
        d = g.nodes[n]
        extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in _CORE and k not in PLAN_NODE_KEYS}
        out.append(Node(n, d["op"], list(d["inputs"]), d.get("span"), tuple(d.get("block", ())), extra))
    return out


def consumers(g: nx.DiGraph) -> dict[str, list[str]]:
    """For every node, the nodes reading it (each listed once per use, in order)."""
    uses: dict[str, list[str]] = {n: [] for n in g.nodes}
    for n in ordered(g):
        for i in g.nodes[n]["inputs"]:
            uses[i].append(n)
    return uses


def resolver(mapping: dict[str, str]):
    """A function following ``mapping`` (old name -> replacement) to its end."""

    def resolve(name: str) -> str:
        seen = set()
        while name in mapping:
            if name in seen:
                raise GraphError(f"rewrite cycle through {name!r}")
            seen.add(name)
            name = mapping[name]
        return name

    return resolve


def build(g: nx.DiGraph, nodes: Iterable[Node], output: str | None = None,
          replaced: dict[str, str] | None = None) -> nx.DiGraph:
    """A new graph with ``g``'s graph attributes (deep-copied) and ``nodes`` in this order.

    ``replaced`` maps removed node names to the node now producing their value; inputs and
    the output are redirected through it. Shapes and costs are re-inferred; a shape that no
    longer fits is a bug in the pass and raises :class:`GraphError`.
    """
    resolve = resolver(replaced or {})
    new = nx.DiGraph()
    new.graph.update({k: copy.deepcopy(v) for k, v in g.graph.items() if k not in PLAN_GRAPH_KEYS})
    new.graph["passes"] = list(g.graph.get("passes", []))
    for nd in nodes:
        ins = [resolve(i) for i in nd.inputs]
        if nd.name in new:
            raise GraphError(f"duplicate node name {nd.name!r}")
        for i in ins:
            if i not in new:
                raise GraphError(f"node {nd.name!r} reads {i!r}, which does not come before it")
        shapes = [new.nodes[i]["shape"] for i in ins]
        try:
            shape = tuple(nd.op["shape"]) if nd.op.kind == "input" else infer_shape(nd.op, shapes)
        except ShapeError as e:
            raise GraphError(f"node {nd.name!r} ({nd.op.kind}): {e.message}") from None
        new.add_node(nd.name, op=nd.op, inputs=ins, shape=shape, cost=op_cost(nd.op, shapes, shape),
                     span=nd.span, block=nd.block, **nd.extra)
        for i in ins:
            new.add_edge(i, nd.name, shape=new.nodes[i]["shape"])
    new.graph["output"] = resolve(output if output is not None else g.graph["output"])
    return new


def absorb_into_producer(g: nx.DiGraph, kind: str, fold: Callable[[Node, Node], Op | None],
                         producers: tuple[str, ...] = ("conv", "fc")) -> nx.DiGraph:
    """A copy of ``g`` where each ``kind`` node that follows a ``producers`` node is absorbed into it.

    Candidates: the follower's input is a node of a kind in ``producers`` (conv/fc unless told)
    with no fused activation, read by the follower alone and not the output. ``fold(producer,
    follower)`` returns the producer's new op, or None to keep both; an absorbed follower's
    readers (and the output) then read the producer.
    """
    uses = consumers(g)
    out = g.graph["output"]
    nodes = nodes_of(g)
    by_name = {nd.name: nd for nd in nodes}
    keep, replaced = [], {}
    for nd in nodes:
        if nd.op.kind == kind:
            src = by_name[nd.inputs[0]]
            if (src.op.kind in producers and not src.op.get("act") and uses[src.name] == [nd.name]
                    and src.name != out):
                new_op = fold(src, nd)
                if new_op is not None:
                    src.op = new_op
                    replaced[nd.name] = src.name
                    continue
        keep.append(nd)
    return build(g, keep, replaced=replaced)


def clone(g: nx.DiGraph) -> nx.DiGraph:
    """A deep, independent copy of ``g`` (the memory plan dropped)."""
    return build(g, nodes_of(g))


def unique_name(taken: set[str] | nx.DiGraph, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``... the first not in ``taken``."""
    if base not in taken:
        return base
    k = 2
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def record_report(g: nx.DiGraph, name: str, report: Any) -> None:
    """Store a pass's report (plain data) in ``g.graph["reports"][name]``."""
    reports = dict(g.graph.get("reports") or {})
    reports[name] = report
    g.graph["reports"] = reports
