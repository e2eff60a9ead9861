"""Effective conv/fc weights of a (possibly optimised) graph, in plain NumPy.

This is the NumPy statement of the ``parts`` contract in :mod:`cnnc.passes`: a conv/fc
node carrying ``parts`` draws its weights from one or more source layers (horizontal
fusion) and may have a batchnorm folded in. The reference executor uses it, and so can
any pass or test that needs the weights a fused node really applies.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np

from ..errors import GraphError, ParamsError

WEIGHTED = ("conv", "fc")


def _get(params: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return params[name]
    except KeyError:
        raise ParamsError(f"missing parameter {name!r}") from None


def _part(params: Mapping[str, np.ndarray], part: Mapping, dtype: np.dtype | None
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """One part's weight and bias (bias None when the part has none and no batchnorm)."""
    node = part["node"]
    w = np.asarray(_get(params, f"{node}.weight"))
    if dtype is not None:
        w = w.astype(dtype, copy=False)
    if w.shape[0] != part["out"]:
        raise GraphError(f"part {node!r} declares {part['out']} outputs but its weight has {w.shape[0]}")
    b: np.ndarray | None = None
    if part.get("bias"):
        b = np.asarray(_get(params, f"{node}.bias"))
        if dtype is not None:
            b = b.astype(dtype, copy=False)
    bn = part.get("bn")
    if bn:
        gamma = _get(params, f"{bn}.weight")
        beta = _get(params, f"{bn}.bias")
        mean = _get(params, f"{bn}.running_mean")
        var = _get(params, f"{bn}.running_var")
        if dtype is not None:
            gamma, beta, mean, var = (a.astype(dtype, copy=False) for a in (gamma, beta, mean, var))
        scale = gamma / np.sqrt(var + part.get("eps", 1e-5))
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b0 = b if b is not None else np.zeros(w.shape[0], w.dtype)
        b = (b0 - mean) * scale + beta
    return w, b


def node_params(g: nx.DiGraph, n: str, params: Mapping[str, np.ndarray], dtype: np.dtype | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The effective ``(weight, bias or None)`` of conv/fc node ``n``.

    Without ``parts``: ``<n>.weight`` and ``<n>.bias`` (None when the op has no bias).
    With ``parts``: the concatenation along axis 0 of each part's weight, each scaled per
    output channel by ``gamma / sqrt(running_var + eps)`` when the part folds a batchnorm;
    the bias is the concatenation of each part's bias (zeros where a part has none), then
    ``(b - running_mean) * scale + beta`` for a folded batchnorm. The bias is None only when
    no part has a bias or a batchnorm. ``dtype`` (optional) casts the arrays first.
    """
    op = g.nodes[n]["op"]
    if op.kind not in WEIGHTED:
        raise GraphError(f"node {n!r} ({op.kind}) has no weights")
    parts = op.get("parts")
    if not parts:
        return _part(params, {"node": n, "out": _out_features(op), "bias": op.get("bias", True),
                              "bn": None}, dtype)
    pieces = [_part(params, p, dtype) for p in parts]
    w = np.concatenate([p[0] for p in pieces], axis=0)
    if w.shape[0] != _out_features(op):
        raise GraphError(f"node {n!r}: its parts give {w.shape[0]} outputs, the op has {_out_features(op)}")
    if all(p[1] is None for p in pieces):
        return w, None
    b = np.concatenate([p[1] if p[1] is not None else np.zeros(p[0].shape[0], p[0].dtype) for p in pieces])
    return w, b


def _out_features(op) -> int:
    return op["filters"] if op.kind == "conv" else op["out"]


def effective_params(g: nx.DiGraph, params: Mapping[str, np.ndarray], dtype: np.dtype | None = None
                     ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{node: (weight, bias or None)}`` for every conv/fc node of ``g`` (see :func:`node_params`)."""
    return {n: node_params(g, n, params, dtype) for n in g.nodes if g.nodes[n]["op"].kind in WEIGHTED}
