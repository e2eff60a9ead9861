"""Batchnorm folding: an inference batchnorm right after a conv/fc is folded into its weights.

Requires: any graph (run before ``fuse_relu``: a ReLU between them blocks folding).
Ensures: a batchnorm whose input is a conv/fc read only by it (not the output, no fused
activation, at most one ``parts`` entry without a batchnorm) is gone; the conv/fc gets
``parts`` naming the batchnorm (see :mod:`cnnc.passes`: weights scaled by
``gamma/sqrt(var+eps)``, bias ``(b - mean)*scale + beta``) and ``bias=True``.
Preserves values: yes (up to rounding).
"""

from __future__ import annotations

import networkx as nx

from .rewrite import build, consumers, nodes_of

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def own_parts(op, name: str) -> tuple[dict, ...]:
    """The ``parts`` of a conv/fc op: its own, or the one part that is the node itself."""
    if op.get("parts"):
        return tuple(dict(p) for p in op["parts"])
    out = op["filters"] if op.kind == "conv" else op["out"]
    return ({"node": name, "out": out, "bias": bool(op["bias"]), "bn": None, "eps": 0.0},)


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every foldable conv/fc + batchnorm pair folded."""
    uses = consumers(g)
    out = g.graph["output"]
    nodes = nodes_of(g)
    by_name = {nd.name: nd for nd in nodes}
    keep, replaced = [], {}
    for nd in nodes:
        if nd.op.kind == "batchnorm":
            src = by_name[nd.inputs[0]]
            if (src.op.kind in ("conv", "fc") and not src.op.get("act") and uses[src.name] == [nd.name]
                    and src.name != out):
                parts = own_parts(src.op, src.name)
                if len(parts) == 1 and parts[0]["bn"] is None:
                    parts[0].update(bn=nd.name, eps=float(nd.op["eps"]))
                    src.op = src.op.replace(parts=parts, bias=True)
                    replaced[nd.name] = src.name
                    continue
        keep.append(nd)
    return build(g, keep, replaced=replaced)
