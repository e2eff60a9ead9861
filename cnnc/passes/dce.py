"""Dead-node elimination.

Requires: any graph.
Ensures: every node but the input reaches the output (is one of its ancestors or the
output itself).
Preserves values: yes (a node nothing reads cannot change the output).
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` keeping only the input and the nodes the output depends on."""
    out = g.graph["output"]
    live = nx.ancestors(g, out) | {out, g.graph["input"]}
    return build(g, [nd for nd in nodes_of(g) if nd.name in live])
