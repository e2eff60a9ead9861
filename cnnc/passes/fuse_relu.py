"""Vertical fusion: a ReLU after a conv, fc, residual add or batchnorm becomes that op's epilogue.

Requires: any graph (run after ``bn_fold``: a batchnorm folded into its conv is gone by then).
Ensures: a conv/fc/add/batchnorm read only by a ReLU (and not the output) carries ``act="relu"``
and the ReLU is gone; its readers (and the output) read the fused op. The fused kernel applies
``max(0, x + bias)`` (an add: ``max(0, a + b + ...)``; a batchnorm: ``max(0, x * scale + shift)``,
the pre-activation ``bn relu`` of DenseNet and pre-activation ResNets) as it writes, with no extra
pass over memory.
Preserves values: yes.
"""

from __future__ import annotations

import networkx as nx

from .rewrite import absorb_into_producer

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}

#: the op kinds whose kernels can apply a fused activation on the way out
FUSABLE = ("conv", "fc", "add", "batchnorm")


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with every fusable conv/fc/add/batchnorm + ReLU pair fused."""
    return absorb_into_producer(g, "relu", lambda src, _relu: src.op.replace(act="relu"), FUSABLE)
