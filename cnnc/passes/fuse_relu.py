"""Vertical fusion: a ReLU after a conv/fc becomes the conv/fc's epilogue.

Requires: any graph.
Ensures: a conv/fc read only by a ReLU (and not the output) carries ``act="relu"`` and the
ReLU is gone; its readers (and the output) read the conv/fc. The fused kernel applies
``max(0, x + bias)`` as it writes, with no extra pass over memory.
Preserves values: yes.
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, consumers, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every fusable conv/fc + ReLU pair fused."""
    uses = consumers(g)
    out = g.graph["output"]
    nodes = nodes_of(g)
    by_name = {nd.name: nd for nd in nodes}
    keep, replaced = [], {}
    for nd in nodes:
        if nd.op.kind == "relu":
            src = by_name[nd.inputs[0]]
            if (src.op.kind in ("conv", "fc") and not src.op.get("act") and uses[src.name] == [nd.name]
                    and src.name != out):
                src.op = src.op.replace(act="relu")
                replaced[nd.name] = src.name
                continue
        keep.append(nd)
    return build(g, keep, replaced=replaced)
