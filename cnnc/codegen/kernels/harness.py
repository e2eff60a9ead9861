"""Run one conv strategy of a compiled CPU module on arrays, through the same call line the module uses.

Tests and ``benchmarks/kernels.py`` check and time every strategy on many shapes without compiling a module per
shape: the kernels are generic, so one module holding every kernel (:func:`kernel_module`) runs them all. The call
line and the weight transform are the strategy's own (what ``Model`` runs), evaluated with the buffers bound.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from ...graph import GraphBuilder
from ...ops import make_op
from ..schedule import Ref, Step
from . import STRATEGIES, ConvShape

#: element offsets of the input and output inside their buffers (the kernels must honour them)
X_OFFSET = 5
Y_OFFSET = 3
#: elements after the input in its buffer; they and the offset before it are NaN, so a kernel that reads one
#: of them and multiplies it by a zero weight (rather than dropping it) shows
X_SLACK = 7
#: element offset of a fused residual inside its buffer
Z_OFFSET = 2


def graph() -> Any:
    """The harness network: one small conv per strategy, each forced to it (``g.graph["kernels"]``)."""
    b = GraphBuilder("kernel_harness", (4, 8, 8))
    x = b.layer("conv", b.input, name="wino", filters=4, kernel=3, pad=1)
    x = b.layer("conv", x, name="wino4", filters=4, kernel=3, pad=1)
    x = b.layer("conv", x, name="wino5", filters=4, kernel=5, pad=2)
    x = b.layer("conv", x, name="kn", filters=4, kernel=3, pad=1)
    x = b.layer("conv", x, name="pw", filters=4, kernel=1)
    x = b.layer("conv", x, name="pw2", filters=4, kernel=1)
    x = b.layer("conv", x, name="pw3", filters=4, kernel=1)
    x = b.layer("conv", x, name="dw", filters=4, kernel=3, pad=1, groups=4)
    x = b.layer("conv", x, name="dwoc", filters=4, kernel=3, pad=1, groups=4)
    x = b.layer("conv", x, name="gemm", filters=4, kernel=3)
    x = b.layer("conv", x, name="blocked", filters=4, kernel=3, stride=2, pad=1)
    x = b.layer("conv", x, name="direct", filters=4, kernel=3, stride=2, pad=1)
    x = b.layer("conv", x, name="oc", filters=4, kernel=3, pad=1)
    g = b.finish(x)
    g.graph["kernels"] = {"wino": "winograd", "wino4": "winograd4", "wino5": "winograd5x5", "pw": "gemm1x1",
                          "pw2": "direct1x1", "pw3": "direct1x1_oc", "blocked": "im2col_blocked", "oc": "im2col_oc",
                          "dw": "depthwise", "dwoc": "depthwise_oc", "gemm": "im2col", "direct": "direct",
                          "kn": "kn2row"}
    return g


def kernel_module(outdir: str | Path) -> ModuleType:
    """Compile (into ``outdir``) and import a small CPU module that uses every conv strategy (:func:`graph`)."""
    from .. import write
    from ..loader import import_path

    return import_path(write(graph(), "cpu", outdir))


def conv_op(sh: ConvShape, relu: bool, residual: bool = False) -> Any:
    op = make_op("conv", filters=sh.K, kernel=sh.k, stride=sh.s, pad=sh.p, groups=sh.G)
    op = op.replace(act="relu") if relu else op
    return op.replace(residual=True) if residual else op


def run(mod: ModuleType, strategy: str, sh: ConvShape, x: np.ndarray, w: np.ndarray, b: np.ndarray,
        relu: bool, prepared: dict[str, Any] | None = None, residual: np.ndarray | None = None,
        in_place: bool = False) -> np.ndarray:
    """``strategy``'s output (N, K, Ho, Wo) float32 for input ``x`` (N, C, H, W), weight ``w`` (K, C/G, k, k) and
    bias ``b`` (plus ``residual`` (N, K, Ho, Wo) before the ReLU, as a ``fuse_add`` conv does); the output buffer
    starts as NaN, so a pixel the kernel forgets shows. ``in_place``: the residual starts where the output goes
    and is overwritten (as the schedule plans a residual read by the conv alone). ``prepared`` (from
    :func:`prepare`) lets a benchmark reuse buffers and transformed weights."""
    ns = prepared if prepared is not None else prepare(mod, strategy, sh, x, w, b, relu, residual, in_place)
    exec(ns["_code"], ns)  # noqa: S102 - the strategy's own call line, compiled once by prepare
    n = x.shape[0]
    return ns["y"][:, Y_OFFSET:Y_OFFSET + sh.K * sh.Ho * sh.Wo].reshape(n, sh.K, sh.Ho, sh.Wo)


def prepare(mod: ModuleType, strategy: str, sh: ConvShape, x: np.ndarray, w: np.ndarray, b: np.ndarray,
            relu: bool, residual: np.ndarray | None = None, in_place: bool = False) -> dict[str, Any]:
    """The namespace :func:`run` executes the call line in (buffers, weights, scratch)."""
    s = STRATEGIES[strategy]
    n = x.shape[0]
    ins = [Ref("x", X_OFFSET, (sh.C, sh.H, sh.W))]
    if residual is not None:
        ins.append(Ref("y", Y_OFFSET, (sh.K, sh.Ho, sh.Wo)) if in_place else Ref("z", Z_OFFSET, (sh.K, sh.Ho, sh.Wo)))
    step = Step("c", "conv", conv_op(sh, relu, residual is not None), ins,
                Ref("y", Y_OFFSET, (sh.K, sh.Ho, sh.Wo)), "<harness>", "conv", act="relu" if relu else None,
                weights="c", attrs={"pad": sh.p, "has_bias": True})
    scratch = {"cols": 0, "tmp": 0}
    line = s.call(step, sh, scratch)
    W = {"c": np.ascontiguousarray(w.reshape(sh.K, -1), dtype=np.float32)}
    B = {"c": np.ascontiguousarray(b, dtype=np.float32)}
    t = s.transform(step, sh)
    ns: dict[str, Any] = dict(vars(mod))
    if t is not None:
        W[t[0]] = eval(t[1], ns, {"self": SimpleNamespace(W=W)})  # noqa: S307 - the strategy's own expression
    xb = np.full((n, X_OFFSET + sh.C * sh.H * sh.W + X_SLACK), np.nan, np.float32)
    xb[:, X_OFFSET:X_OFFSET + sh.C * sh.H * sh.W] = x.reshape(n, -1)
    yb = np.full((n, Y_OFFSET + sh.K * sh.Ho * sh.Wo + 2), np.nan, np.float32)
    zb = np.full((n, Z_OFFSET + sh.K * sh.Ho * sh.Wo + 3), np.nan, np.float32)  # NaN where nothing may read
    if residual is not None:
        zb[:, Z_OFFSET:Z_OFFSET + sh.K * sh.Ho * sh.Wo] = residual.reshape(n, -1)
        if in_place:
            yb[:, Y_OFFSET:Y_OFFSET + sh.K * sh.Ho * sh.Wo] = residual.reshape(n, -1)
    threads = mod.get_num_threads()
    ns.update(x=xb, y=yb, z=zb, W=W, B=B, _line=line, _code=compile(line, "<harness call>", "exec"),
              scratch=[(np.empty(max(scratch["cols"], 1), np.float32), np.empty(max(scratch["tmp"], 1), np.float32))
                       for _ in range(threads)])
    return ns


def median_seconds(mod: ModuleType, strategy: str, sh: ConvShape, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                   relu: bool, prepared: dict[str, Any], seconds: float) -> float:
    """The median time of :func:`run` on a prepared case: at least 3 calls and at least ``seconds`` of them
    (the first call, which may compile, is the caller's). The threads are pinned as in a Model's call."""
    import statistics
    import time

    times: list[float] = []
    end = time.perf_counter() + seconds
    mod._WORKERS.begin_call()
    try:
        while len(times) < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            run(mod, strategy, sh, x, w, b, relu, prepared)
            times.append(time.perf_counter() - t0)
    finally:
        mod._WORKERS.end_call()
    return statistics.median(times)


def reference(sh: ConvShape, x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool,
              residual: np.ndarray | None = None) -> np.ndarray:
    """The float64 reference of the same convolution."""
    from ...runtime.reference import conv

    y = conv(conv_op(sh, False), [x.astype(np.float64)], {"weight": w.astype(np.float64),
                                                        "bias": b.astype(np.float64)})
    if residual is not None:
        y = y + residual.astype(np.float64)
    return np.maximum(y, 0.0) if relu else y


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    """Largest absolute difference relative to the reference's largest magnitude (NaN counts as infinite)."""
    d = np.abs(y.astype(np.float64) - ref)
    if not np.isfinite(d).all():
        return float("inf")
    return float(d.max() / max(np.abs(ref).max(), 1e-30))
