"""Vertical fusion: a ReLU after a conv/fc becomes the conv/fc's epilogue.

Requires: any graph.
Ensures: a conv/fc read only by a ReLU (and not the output) carries ``act="relu"`` and the
ReLU is gone; its readers (and the output) read the conv/fc. The fused kernel applies
``max(0, x + bias)`` as it writes, with no extra pass over memory.
Preserves values: yes.
"""

from __future__ import annotations

import networkx as nx

from .rewrite import absorb_into_producer

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every fusable conv/fc + ReLU pair fused."""
    return absorb_into_producer(g, "relu", lambda src, _relu: src.op.replace(act="relu"))
