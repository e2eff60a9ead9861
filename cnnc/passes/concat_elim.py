"""Concat elimination: each branch writes straight into its channel slice of the merged buffer.

Requires: any graph (run after the vertical fusions, so branches end in a conv).
Ensures: a concat gets ``inplace=True`` when every input is produced by a materialising op
(conv, fc, pools, gap, lrn, batchnorm, add, or a concat, in place or not), appears once among
its inputs, feeds no other concat, and is neither the network input nor the output. Code
generation then gives each such producer a channel-slice view of the concat's buffer and emits
no copy; other readers of an input read that view (the buffer lives until the last of them).
A concat that is itself an input of an in-place concat lives in the outer one's slice, so a
concat that grows layer by layer (a DenseNet dense block: each layer reads the concat so far
and appends its features) is one buffer written once per layer, with no copying at all.
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

    An input may have other readers (they read the slice), but no other concat: a tensor lives in one place.
    ``inplace`` is kept for callers that mark several concats in one sweep (nested concats are allowed).
    """
    ins = g.nodes[concat]["inputs"]
    for i in ins:
        op = g.nodes[i]["op"]
        if op.kind not in MATERIALISING or i in (g.graph["input"], g.graph["output"]):
            return False
        if [u for u in uses[i] if g.nodes[u]["op"].kind == "concat"] != [concat]:
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
