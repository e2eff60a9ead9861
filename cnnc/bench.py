"""Benchmarking generated modules (DESIGN §7): compile, warm up, time, compare with PyTorch.

* :func:`set_threads` gives every thread pool in the process the same size: Numba's,
  SciPy's OpenBLAS (the BLAS ``np.dot`` calls inside ``@njit``) and PyTorch's.
* :func:`time_calls` is the median of ``runs`` timed calls after a warm-up.
* :class:`TorchNet` runs the *source* network (no cnnc passes) with ``torch.nn.functional``
  and the same parameters, built once so that timing measures the forward pass only.
* :func:`profile_steps` times every step of a generated ``Model`` (``Model.trace``).

PyTorch is imported before the generated module so that its OpenMP runtime starts with
the user's settings, not with the passive waiting a generated module asks of Numba's.
"""

from __future__ import annotations

import ctypes
import glob
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from types import ModuleType
from typing import Any

import networkx as nx
import numpy as np

from .errors import CnncError
from .graph import ordered


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _openblas() -> ctypes.CDLL | None:
    """SciPy's OpenBLAS (the one Numba's ``np.dot`` calls), loaded already by SciPy."""
    import scipy.linalg.cython_blas  # noqa: F401 - loads the library

    candidates: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            candidates = sorted({line.split()[-1] for line in f
                                 if "openblas" in line and "/scipy.libs/" in line})
    except OSError:
        pass
    if not candidates:
        import scipy

        candidates = glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs", "*openblas*"))
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def set_threads(n: int, torch: Any = None, module: ModuleType | None = None) -> list[str]:
    """Give cnnc and PyTorch ``n`` threads each; returns what was set.

    A generated CPU module runs its kernels on its own ``n`` threads (``set_num_threads``)
    with SciPy's OpenBLAS at one thread per call (the module sets that itself; this sets it
    again in case something reset it). Numba's own pool is sized ``n`` too."""
    import numba

    done = []
    if module is not None and hasattr(module, "set_num_threads"):
        module.set_num_threads(n)
        done.append("module")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    done.append("numba")
    lib = _openblas()
    if lib is not None:
        for fn in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            if hasattr(lib, fn):
                getattr(lib, fn)(ctypes.c_int(1))
                done.append("openblas=1")
                break
    if torch is not None:
        torch.set_num_threads(n)
        done.append("torch")
    return done


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


#: the pause before each timed call of an interleaved group (s). PyTorch's OpenMP threads busy-wait for
#: tens of milliseconds after each call (GNU OpenMP's default spin); without the pause they take a core
#: from whichever engine is timed next: ONNX Runtime timed right after PyTorch measured 20-40% slower
#: (NiN, batch 1, 2 cores). With it, every engine starts on idle cores, as it would run alone.
SETTLE = 0.05


def time_group(fns: list[Callable[[], object]], runs: int, warmup: int = 2,
               settle: float = SETTLE, warm: bool = False) -> list[list[float]]:
    """Seconds of ``runs`` calls of each function, interleaved (a, b, c, a, b, c...) after warm-ups: on a
    machine shared with other work every side then sees the same conditions. With two functions or more,
    each timed call follows a ``settle``-second pause (see :data:`SETTLE`), so none is slowed by the threads
    of the one before; a function timed alone follows only itself, and is not paused.

    ``warm``: each timed call follows an untimed call of the same function (after the pause), so it measures
    a call back to back rather than one after idle cores (whose clocks and caches a VM may have let go: on a
    2-core EPYC VM a network's call after 50 ms of idle took up to 1.7x one back to back)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    pause = settle if len(fns) > 1 else 0.0
    for _ in range(runs):
        for fn, times in zip(fns, out, strict=True):
            if pause > 0:
                time.sleep(pause)
            if warm:
                fn()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return out


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


class Progress:
    """A visible ``label... 12 s`` line on stderr while something slow (Numba compiling) runs."""

    def __init__(self, label: str, stream: Any = None):
        self.label = label
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seconds = 0.0

    def _tick(self, t0: float) -> None:
        while not self._stop.wait(1.0):
            self.stream.write(f"\r{self.label}... {time.perf_counter() - t0:.0f} s")
            self.stream.flush()

    def __enter__(self) -> Progress:
        self._t0 = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.stream.write(f"{self.label}..." + ("" if self._tty else "\n"))
        self.stream.flush()
        if self._tty:
            self._thread = threading.Thread(target=self._tick, args=(self._t0,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.seconds = time.perf_counter() - self._t0
        self.stream.write(f"\r{self.label}... {self.seconds:.1f} s\n" if self._tty
                          else f"{self.label}: {self.seconds:.1f} s\n")
        self.stream.flush()


class TorchNet:
    """The source network in PyTorch (``torch.nn.functional``), weights converted once."""

    def __init__(self, g: nx.DiGraph, params: Mapping[str, np.ndarray], torch: Any):
        self.torch = torch
        self.g = g
        F = torch.nn.functional
        p = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in params.items()}
        self.ops: list[tuple[str, Callable[..., Any], list[str]]] = []
        for n in ordered(g):
            d = g.nodes[n]
            op = d["op"]
            if op.get("parts") or op.get("act") or op.kind == "slice":
                raise CnncError("the PyTorch comparison runs the source network: give it the graph before passes")
            self.ops.append((n, self._fn(F, n, op, d, p), list(d["inputs"])))
        self.output = g.graph["output"]
        self.input = g.graph["input"]

    def _fn(self, F: Any, n: str, op: Any, d: dict, p: Mapping[str, Any]) -> Callable[..., Any]:
        torch = self.torch
        k = op.kind

        def pad_of(o: Any) -> int:
            return o["kernel"] // 2 if o["pad"] == "same" else int(o["pad"])

        if k == "input":
            return lambda: None
        if k == "conv":
            w, b = p[f"{n}.weight"], p.get(f"{n}.bias")
            s, pad, groups, kk = op["stride"], pad_of(op), op["groups"], op["kernel"]
            ho, wo = d["shape"][1:]
            h, wi = self.g.nodes[d["inputs"][0]]["shape"][1:]
            eh = max(0, (ho - 1) * s + kk - h - 2 * pad)
            ew = max(0, (wo - 1) * s + kk - wi - 2 * pad)
            if eh or ew:
                return lambda x: F.conv2d(F.pad(x, (0, ew, 0, eh)), w, b, s, pad, 1, groups)
            return lambda x: F.conv2d(x, w, b, s, pad, 1, groups)
        if k == "fc":
            w, b = p[f"{n}.weight"], p.get(f"{n}.bias")
            return lambda x: F.linear(torch.flatten(x, 1), w, b)
        if k == "maxpool":
            return lambda x: F.max_pool2d(x, op["kernel"], op["stride"], pad_of(op), ceil_mode=op["round"] == "ceil")
        if k == "avgpool":
            return lambda x: F.avg_pool2d(x, op["kernel"], op["stride"], pad_of(op), ceil_mode=op["round"] == "ceil",
                                          count_include_pad=bool(op["count_pad"]))
        if k == "gap":
            return lambda x: F.adaptive_avg_pool2d(x, 1)
        if k == "lrn":
            return lambda x: F.local_response_norm(x, op["size"], alpha=op["alpha"], beta=op["beta"], k=op["k"])
        if k == "relu":
            return lambda x: F.relu(x, inplace=True)
        if k == "relu6":
            return lambda x: F.relu6(x, inplace=True)
        if k == "flatten":
            return lambda x: torch.flatten(x, 1)
        if k == "dropout":
            return lambda x: x
        if k == "softmax":
            return lambda x: F.softmax(x, dim=1)
        if k == "batchnorm":
            args = [p[f"{n}.{s}"] for s in ("running_mean", "running_var", "weight", "bias")]
            return lambda x: F.batch_norm(x, *args, training=False, eps=op["eps"])
        if k == "concat":
            return lambda *xs: torch.cat(xs, 1)
        if k == "add":
            return lambda *xs: sum(xs[1:], xs[0])
        raise CnncError(f"no PyTorch rule for op kind {k!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            vals: dict[str, Any] = {self.input: torch.from_numpy(x)}
            for n, fn, ins in self.ops:
                if n == self.input:
                    continue
                vals[n] = fn(*[vals[i] for i in ins])
            return vals[self.output].numpy()


@dataclass
class Row:
    """One benchmark line."""

    batch: int
    ms: float
    ms_image: float
    gflops: float
    torch_ms: float | None = None
    ort_ms: float | None = None  # ONNX Runtime (--compare onnxruntime)

    @property
    def ratio(self) -> float | None:
        return None if self.torch_ms is None else self.ms / self.torch_ms

    @property
    def ort_ratio(self) -> float | None:
        return None if self.ort_ms is None else self.ms / self.ort_ms


def gflops(macs_per_image: int, batch: int, ms: float) -> float:
    """GFLOP/s = 2 x MACs / time."""
    return 2.0 * macs_per_image * batch / (ms * 1e-3) / 1e9


def profile_steps(module: ModuleType, model: Any, x: np.ndarray, runs: int) -> list[tuple[str, str, str, float]]:
    """Median milliseconds of every step of ``model`` on ``x``: ``(layer, what, where, ms)``."""
    stamps: list[float] = []

    def tick(i: int) -> None:
        stamps.append(time.perf_counter())

    per_step: list[list[float]] = [[] for _ in module.STEPS]
    model(x)
    for _ in range(runs):
        stamps.clear()
        t0 = time.perf_counter()
        model.trace(x, tick)
        prev = t0
        for i, t in enumerate(stamps):
            per_step[i].append(t - prev)
            prev = t
    return [(layer, what, where, statistics.median(ts) * 1e3)
            for (layer, what, where), ts in zip(module.STEPS, per_step, strict=True)]


def step_macs(g: nx.DiGraph, layer: str) -> int:
    """MACs per image of a graph node (0 if absent)."""
    return int(g.nodes[layer]["cost"].macs) if layer in g else 0


def random_input(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def elements(shape: tuple[int, ...]) -> int:
    return prod(shape)
