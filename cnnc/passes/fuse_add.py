"""Residual fusion: an ``add`` of two tensors becomes the epilogue of the conv producing one of them.

Requires: any graph (runs after ``fuse_relu``, so an add may carry a fused ReLU, and after ``hfuse``).
Ensures: for a two-input add whose later input (in node order) is a conv with no fused activation and no
residual yet, read by the add alone (once) and not the output, the conv carries ``residual=True``, its
inputs become ``[x, other]`` (``other``: the add's other input, which comes before the conv in node order,
so it is ready when the conv runs) and it takes over the add's activation; the add is gone and its
readers (and the output) read the conv. The fused kernel writes ``act(conv(x) + bias + other)`` in its
epilogue: one pass over memory less than a separate add, and the conv's output no longer makes a round
trip through memory before the sum. Adds of three or more tensors are left as they are.
Preserves values: yes (the same sum; float32 kernels add in a different order, within rounding).
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, consumers, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every fusable residual add folded into the conv producing one of its inputs."""
    uses = consumers(g)
    out = g.graph["output"]
    nodes = nodes_of(g)
    by_name = {nd.name: nd for nd in nodes}
    position = {nd.name: i for i, nd in enumerate(nodes)}
    keep, replaced = [], {}
    for nd in nodes:
        if nd.op.kind == "add" and len(nd.inputs) == 2 and nd.inputs[0] != nd.inputs[1]:
            late, early = sorted(nd.inputs, key=position.__getitem__, reverse=True)
            src = by_name[late]
            if (src.op.kind == "conv" and not src.op.get("act") and not src.op.get("residual")
                    and uses[late] == [nd.name] and late != out):
                src.op = src.op.replace(residual=True, **({"act": nd.op["act"]} if nd.op.get("act") else {}))
                src.inputs = [src.inputs[0], early]
                replaced[nd.name] = late
                continue
        keep.append(nd)
    return build(g, keep, replaced=replaced)
