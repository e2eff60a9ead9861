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

from ..ops import Op
from .rewrite import Node, absorb_into_producer

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def own_parts(op, name: str) -> tuple[dict, ...]:
    """The ``parts`` of a conv/fc op: its own, or the one part that is the node itself."""
    if op.get("parts"):
        return tuple(dict(p) for p in op["parts"])
    out = op["filters"] if op.kind == "conv" else op["out"]
    return ({"node": name, "out": out, "bias": bool(op["bias"]), "bn": None, "eps": 0.0},)


def _fold(src: Node, bn: Node) -> Op | None:
    parts = own_parts(src.op, src.name)
    if len(parts) != 1 or parts[0]["bn"] is not None:
        return None
    parts[0].update(bn=bn.name, eps=float(bn.op["eps"]))
    return src.op.replace(parts=parts, bias=True)


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every foldable conv/fc + batchnorm pair folded."""
    return absorb_into_producer(g, "batchnorm", _fold)
