"""The NumPy reference executor: the numerical ground truth for passes and generated code.

One plain NumPy function per op kind, written to be obviously right rather than fast.
It evaluates any graph (with or without pass annotations, see :mod:`cnnc.passes`) on a
batch ``(N, C, H, W)`` (or ``(N, F)`` for flat inputs) in float32 or float64.

Semantics (Caffe / PyTorch):

* conv: zero padding, stride, groups, optional bias; ``round=ceil`` adds zero padding on
  the right/bottom for the extra window.
* maxpool: padded cells never win (they are ``-inf``).
* avgpool: sums over the window; the divisor is the window clipped to the padded input
  (``count_pad=True``, PyTorch ``count_include_pad=True`` also in ceil mode) or the
  number of real input cells in the window (``count_pad=False``).
* lrn: ``x / (k + alpha/size * sum_window x^2)^beta`` over channels, the window zero-padded
  ``size//2`` before and ``(size-1)//2`` after (PyTorch ``local_response_norm``).
* fc: the input flattened in C,H,W order, ``x @ W.T + b``.
* softmax: over axis 1 (channels or features). batchnorm: inference, running statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import GraphError, InputError
from ..graph import ordered
from ..ops import Op
from ..passes.params import effective_params
from ..shapes import window_out

Array = np.ndarray


def _pad_amount(op: Op) -> int:
    p = op["pad"]
    if p == "same":
        return op["kernel"] // 2
    return int(p)


def _window_geometry(n: int, op: Op) -> tuple[int, int, int]:
    """``(out, pad_before, pad_after)`` of one spatial axis of length ``n``.

    ``pad_after`` covers the last window even when ceil rounding lets it hang over the edge.
    """
    k, s, p = op["kernel"], op["stride"], _pad_amount(op)
    out = window_out(n, k, s, p, op.get("round", "floor"))
    after = max(p, (out - 1) * s + k - n - p)
    return out, p, after


def _windows(x: Array, op: Op, fill: float) -> Array:
    """Every window of ``x`` (N, C, H, W): an array (N, C, Hout, Wout, k, k) (a view of a padded copy)."""
    _, _, h, w = x.shape
    k, s = op["kernel"], op["stride"]
    ho, ph0, ph1 = _window_geometry(h, op)
    wo, pw0, pw1 = _window_geometry(w, op)
    xp = np.pad(x, ((0, 0), (0, 0), (ph0, ph1), (pw0, pw1)), constant_values=fill)
    win = sliding_window_view(xp, (k, k), axis=(2, 3))
    return win[:, :, : (ho - 1) * s + 1 : s, : (wo - 1) * s + 1 : s]


# --- one function per op kind: (op, inputs, node parameters) -> output --------------------

def conv(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """2-D convolution, im2col by sliding windows and a tensordot per image and group (plus the second input,
    a pass-fused residual, before the activation)."""
    x = xs[0]
    w, b = p["weight"], p["bias"]
    n, c, _, _ = x.shape
    groups = op["groups"]
    cg, fg = c // groups, w.shape[0] // groups
    win = _windows(x, op, 0.0)  # (N, C, Ho, Wo, k, k)
    ho, wo = win.shape[2], win.shape[3]
    out = np.empty((n, w.shape[0], ho, wo), dtype=np.result_type(x, w))
    for i in range(n):  # per image: keeps the im2col copy small
        for gi in range(groups):
            patches = win[i, gi * cg : (gi + 1) * cg]  # (Cg, Ho, Wo, k, k)
            wg = w[gi * fg : (gi + 1) * fg]  # (Fg, Cg, k, k)
            y = np.tensordot(wg, patches, axes=([1, 2, 3], [0, 3, 4]))  # (Fg, Ho, Wo)
            out[i, gi * fg : (gi + 1) * fg] = y
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    if op.get("residual"):
        out += xs[1]
    return _act(op, out)


def fc(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Fully connected: input flattened in C,H,W order, ``x @ W.T + b``."""
    (x,) = xs
    y = x.reshape(x.shape[0], -1) @ p["weight"].T
    if p["bias"] is not None:
        y = y + p["bias"]
    return _act(op, y)


def _act(op: Op, y: Array) -> Array:
    act = op.get("act")
    if act is None:
        return y
    if act == "relu":
        return np.maximum(y, 0)
    raise GraphError(f"unknown fused activation {act!r}")


def maxpool(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Max over each window; padding is ``-inf`` so a padded cell never wins."""
    (x,) = xs
    return _windows(x, op, -np.inf).max(axis=(4, 5))


def _divisors(n: int, op: Op) -> Array:
    """Per output position of one axis: the window length the average divides by."""
    k, s, p = op["kernel"], op["stride"], _pad_amount(op)
    out, _, _ = _window_geometry(n, op)
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)  # clipped to the padded input
    if op.get("count_pad", True):
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


def avgpool(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Window sums (zero padding) divided by the Caffe/PyTorch window count."""
    (x,) = xs
    sums = _windows(x, op, 0.0).sum(axis=(4, 5))
    div = np.outer(_divisors(x.shape[2], op), _divisors(x.shape[3], op)).astype(x.dtype)
    return sums / div


def gap(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    (x,) = xs
    return x.mean(axis=(2, 3), keepdims=True)


def lrn(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Local response normalisation across channels (PyTorch convention)."""
    (x,) = xs
    size = op["size"]
    sq = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)))
    window_sum = sliding_window_view(sq, size, axis=1).sum(axis=-1)  # (N, C, H, W)
    return x / (op["k"] + op["alpha"] / size * window_sum) ** op["beta"]


def relu(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    return np.maximum(xs[0], 0)


def relu6(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    return np.minimum(np.maximum(xs[0], 0), 6)


def flatten(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    return xs[0].reshape(xs[0].shape[0], -1)


def identity(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    return xs[0]


def softmax(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Softmax over axis 1 (channels or features), shifted by the maximum for stability."""
    e = np.exp(xs[0] - xs[0].max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def batchnorm(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Inference batchnorm: ``(x - mean) / sqrt(var + eps) * gamma + beta`` per channel."""
    (x,) = xs
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = p["running_mean"].reshape(shape), p["running_var"].reshape(shape)
    gamma, beta = p["weight"].reshape(shape), p["bias"].reshape(shape)
    return _act(op, (x - mean) / np.sqrt(var + op["eps"]) * gamma + beta)


def concat(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Channels of the inputs in input order (``inplace`` changes memory, not values)."""
    return np.concatenate(xs, axis=1)


def add(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Element-wise sum of the inputs, then the fused activation if a pass set one."""
    out = xs[0].copy()
    for x in xs[1:]:
        out += x
    return _act(op, out)


def slice_(op: Op, xs: list[Array], p: Mapping[str, Any]) -> Array:
    """Channels ``[start, stop)`` of the single input."""
    return xs[0][:, op["start"] : op["stop"]]


OPS: dict[str, Callable[[Op, list[Array], Mapping[str, Any]], Array]] = {
    "conv": conv,
    "fc": fc,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "gap": gap,
    "lrn": lrn,
    "relu": relu,
    "relu6": relu6,
    "flatten": flatten,
    "dropout": identity,
    "softmax": softmax,
    "batchnorm": batchnorm,
    "concat": concat,
    "add": add,
    "slice": slice_,
}

BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def check_input(g: nx.DiGraph, x: Any) -> Array:
    """``x`` as an array of shape ``(N,) + input shape``, or an :class:`InputError`."""
    x = np.asarray(x)
    want = tuple(g.nodes[g.graph["input"]]["shape"])
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or x.shape[0] < 1:
        shape = "x".join(map(str, want))
        raise InputError(
            f"input has shape {tuple(x.shape)}, network {g.graph.get('name')!r} expects a batch "
            f"(N, {', '.join(map(str, want))}) of {shape} images"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"input has dtype {x.dtype}, expected a floating-point array")
    return x


def _evaluate(g: nx.DiGraph, params: Mapping[str, Array], x: Any, dtype: Any, keep: bool
              ) -> dict[str, Array]:
    dtype = np.dtype(dtype)
    x = check_input(g, x).astype(dtype, copy=False)
    weights = effective_params(g, params, dtype)
    order = ordered(g)
    out_name = g.graph["output"]
    uses = {n: len(list(g.successors(n))) for n in order}
    values: dict[str, Array] = {}
    for n in order:
        d = g.nodes[n]
        op: Op = d["op"]
        if op.kind == "input":
            y = x
        else:
            fn = OPS.get(op.kind)
            if fn is None:
                raise GraphError(f"the reference executor has no rule for op kind {op.kind!r} (node {n!r})")
            if n in weights:
                w, b = weights[n]
                p: Mapping[str, Any] = {"weight": w, "bias": b}
            elif op.kind == "batchnorm":
                p = {s: np.asarray(params[f"{n}.{s}"]).astype(dtype, copy=False) for s in BN_PARAMS}
            else:
                p = {}
            y = fn(op, [values[i] for i in d["inputs"]], p)
            if not keep:
                for i in set(d["inputs"]):
                    uses[i] -= 1
                    if uses[i] == 0 and i != out_name:
                        del values[i]
        want = (x.shape[0],) + tuple(d["shape"])
        if y.shape != want:
            raise GraphError(f"node {n!r} ({op}) produced shape {y.shape[1:]}, the graph says {d['shape']}")
        values[n] = y.astype(dtype, copy=False)
    return values


def run_all(g: nx.DiGraph, params: Mapping[str, Array], x: Any, dtype: Any = np.float64) -> dict[str, Array]:
    """Every node's output ``{node: (N,) + shape}``, computed in ``dtype`` (for per-layer debugging)."""
    return _evaluate(g, params, x, dtype, keep=True)


def run(g: nx.DiGraph, params: Mapping[str, Array], x: Any, dtype: Any = np.float64) -> Array:
    """The network's output for the batch ``x``: shape ``(N,) + g.nodes[output]["shape"]``, in ``dtype``."""
    return _evaluate(g, params, x, dtype, keep=False)[g.graph["output"]]
