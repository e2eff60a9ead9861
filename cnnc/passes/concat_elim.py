"""Concat elimination: each branch writes straight into its channel slice of the merged buffer.

Requires: any graph (run after the vertical fusions, so branches end in a conv).
Ensures: a concat gets ``inplace=True`` when every input is produced by a materialising op
(conv, fc, pools, gap, lrn, batchnorm, add, or a concat that is not itself in place), read
only by this concat (once), and neither the network input nor the output. Code generation
then gives each such producer a channel-slice view of the concat's buffer and emits no copy.
Preserves values: yes (only where results are written changes).
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, consumers, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}

#: op kinds that write a fresh output and so can write it into a slice of another buffer
MATERIALISING = frozenset({"conv", "fc", "maxpool", "avgpool", "gap", "lrn", "batchnorm", "add", "concat"})


def can_write_into(g: nx.DiGraph, concat: str, uses: dict[str, list[str]],
                   inplace: set[str] = frozenset()) -> bool:
    """Whether every input of ``concat`` can write straight into its slice of the concat's buffer.

    ``inplace`` names concats already (or just) marked in place: they cannot write into another.
    """
    ins = g.nodes[concat]["inputs"]
    for i in ins:
        op = g.nodes[i]["op"]
        if op.kind not in MATERIALISING or (op.kind == "concat" and (op.get("inplace") or i in inplace)):
            return False
        if uses[i] != [concat] or i in (g.graph["input"], g.graph["output"]):
            return False
    return len(set(ins)) == len(ins)


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every eligible concat marked ``inplace``."""
    uses = consumers(g)
    nodes = nodes_of(g)
    marked: set[str] = set()
    for nd in nodes:
        if nd.op.kind == "concat" and not nd.op.get("inplace") and can_write_into(g, nd.name, uses, marked):
            nd.op = nd.op.replace(inplace=True)
            marked.add(nd.name)
    return build(g, nodes)
