"""Dropout removal.

Requires: any graph.
Ensures: no ``dropout`` node; every reader of a dropout (and the output, if it was one)
reads the dropout's input instead.
Preserves values: yes (dropout is the identity at inference).
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` without its dropout layers."""
    keep, replaced = [], {}
    for nd in nodes_of(g):
        if nd.op.kind == "dropout":
            replaced[nd.name] = nd.inputs[0]
        else:
            keep.append(nd)
    return build(g, keep, replaced=replaced)
