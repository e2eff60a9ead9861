"""Vertical fusion: a ReLU after a conv, fc or residual add becomes that op's epilogue.

Requires: any graph.
Ensures: a conv/fc/add read only by a ReLU (and not the output) carries ``act="relu"`` and
the ReLU is gone; its readers (and the output) read the conv/fc/add. The fused kernel applies
``max(0, x + bias)`` (an add: ``max(0, a + b + ...)``) as it writes, with no extra pass over
memory.
Preserves values: yes.
"""

from __future__ import annotations

import networkx as nx

from .rewrite import absorb_into_producer

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}

#: the op kinds whose kernels can apply a fused activation on the way out
FUSABLE = ("conv", "fc", "add")


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every fusable conv/fc/add + ReLU pair fused."""
    return absorb_into_producer(g, "relu", lambda src, _relu: src.op.replace(act="relu"), FUSABLE)
