"""``cnnc bench --target cuda``: time a generated CUDA module with CUDA events, and PyTorch on
the same GPU with the same weights.

Timing protocol (per batch size): one call of ``model(x)`` warms up (Numba compiles each
kernel on its first launch) and allocates the batch's device buffers; then ``runs`` (at
least 20) device-only forward passes (``Model.run_device``: every layer, no host copies)
are each bracketed by two CUDA events and the median is reported (``--runs`` below 20 is
raised to 20, except in the simulator), next to the median
wall-clock time of whole calls (host->device copy, layers, device->host copy). PyTorch
runs the source network through ``torch.nn.functional`` on ``cuda`` tensors, timed the
same way with ``torch.cuda.Event`` (TF32 off: a float32 comparison).

Without a GPU the command refuses, except under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``): then the same code path runs on the simulator with
wall-clock timing, and every figure is labelled as a simulator figure (not a GPU
measurement). A PyTorch build without CUDA is compared on its CPU, labelled likewise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TextIO

import networkx as nx
import numpy as np

from . import bench as B
from .errors import CnncError

MIN_RUNS = 20


def simulator() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def require_gpu() -> Any:
    """``numba.cuda`` if a GPU (or the simulator) is there, else a :class:`CnncError`."""
    from numba import cuda

    if not simulator() and not cuda.is_available():
        raise CnncError(
            "no CUDA GPU is available (numba.cuda.is_available() is False): cnnc bench --target cuda "
            "needs an NVIDIA GPU and driver. Without one, `cnnc compile --target cuda` still writes the "
            "module, and NUMBA_ENABLE_CUDASIM=1 runs it (slowly) in Numba's CUDA simulator."
        )
    return cuda


def device_name(cuda: Any) -> str:
    if simulator():
        return "Numba CUDA simulator (NOT a GPU: figures are unmeasured)"
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})"


def time_device(cuda: Any, fn: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of ``fn`` per run, bracketed by CUDA events (wall clock in the simulator)."""
    out = []
    for _ in range(runs):
        if simulator():
            t0 = time.perf_counter()
            fn()
            cuda.synchronize()
            out.append((time.perf_counter() - t0) * 1e3)
            continue
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(start.elapsed_time(stop))
    return out


class TorchGpu:
    """The source network in PyTorch on its GPU (or CPU when this PyTorch has no CUDA)."""

    def __init__(self, g: nx.DiGraph, params: dict[str, np.ndarray], torch: Any):
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        self.net = B.TorchNet(g, params, _OnDevice(torch, self.device))

    def forward(self, xt: Any) -> Any:
        net = self.net
        with self.torch.inference_mode():
            vals = {net.input: xt}
            for n, fn, ins in net.ops:
                if n != net.input:
                    vals[n] = fn(*[vals[i] for i in ins])
            return vals[net.output]

    def to_device(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(x).to(self.device)

    def time(self, x: np.ndarray, runs: int) -> list[float]:
        """Milliseconds per forward pass (CUDA events; wall clock on a CPU-only PyTorch)."""
        torch = self.torch
        xt = self.to_device(x)
        for _ in range(2):
            self.forward(xt)
        if self.device != "cuda":
            return [t * 1e3 for t in B.time_calls(lambda: self.forward(xt), runs, warmup=0)]
        torch.cuda.synchronize()
        out = []
        for _ in range(runs):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self.forward(xt)
            stop.record()
            stop.synchronize()
            out.append(start.elapsed_time(stop))
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(self.to_device(x)).cpu().numpy()


class _OnDevice:
    """``torch`` with ``from_numpy`` placing tensors on ``device`` (how TorchNet gets GPU weights)."""

    def __init__(self, torch: Any, device: str):
        self._torch = torch
        self._device = device

    def from_numpy(self, a: np.ndarray) -> Any:
        return self._torch.from_numpy(a).to(self._device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)


def run(args: argparse.Namespace, g0: nx.DiGraph, g: nx.DiGraph, mod: Any, torch: Any,
        out: TextIO = sys.stdout) -> int:
    """Time the imported CUDA module ``mod`` of ``g`` (``g0``: the source graph, for PyTorch)."""
    cuda = require_gpu()
    sim = simulator()
    runs = args.runs if sim else max(args.runs, MIN_RUNS)  # the simulator takes seconds per run
    macs = int(sum(int(g.nodes[n]["cost"].macs) for n in g.nodes))
    print(f"device: {device_name(cuda)}", file=out)
    params = mod.init_params(args.seed)
    model = mod.Model(params)
    with B.Progress("compiling kernels (first launch of each)"):
        model(B.random_input(mod.INPUT_SHAPE, args.batch[0], args.seed))
    tnet = TorchGpu(g0, params, torch) if torch is not None else None
    if tnet is not None:
        label = "PyTorch on the GPU, TF32 off" if tnet.device == "cuda" else "PyTorch on the CPU (no CUDA build)"
        print(f"comparing with {label}", file=out)
    head = f"{'batch':>6} {'ms/batch':>10} {'ms/image':>10} {'GFLOP/s':>9} {'call ms':>9}"
    if tnet is not None:
        head += f" {'torch ms':>10} {'ratio':>7}"
    kind = "wall-clock (simulator)" if sim else "CUDA events"
    print(f"median of {runs} runs, {kind}; call ms: a whole model(x) call with both copies", file=out)
    print(head, file=out)
    for n in args.batch:
        x = B.random_input(mod.INPUT_SHAPE, n, args.seed)
        model(x)  # buffers for this batch size, and its launch list
        ms = statistics.median(time_device(cuda, lambda n=n: model.run_device(n), runs))
        call_ms = B.median_ms(B.time_calls(lambda x=x: model(x), runs, warmup=0))
        line = f"{n:>6} {ms:>10.3f} {ms / n:>10.3f} {B.gflops(macs, n, ms):>9.1f} {call_ms:>9.3f}"
        if tnet is not None:
            tms = statistics.median(tnet.time(x, runs))
            y, ref = model(x), tnet(x)
            err = float(np.abs(y - ref).max() / max(float(np.abs(ref).max()), 1e-30))
            if not err <= 1e-3:
                print(f"warning: cnnc and PyTorch disagree at batch {n} (max relative difference {err:.1e})",
                      file=sys.stderr)
            line += f" {tms:>10.3f} {ms / tms:>7.2f}"
        print(line, file=out)
    if getattr(args, "per_layer", False):
        per_layer(cuda, g, model, max(args.batch), runs, args.seed, mod, out)
    if sim:
        print("UNMEASURED: these are CUDA-simulator figures (Python threads), not GPU timings.", file=out)
    return 0


def per_layer(cuda: Any, g: nx.DiGraph, model: Any, n: int, runs: int, seed: int, mod: Any, out: TextIO) -> None:
    """Median time of every kernel launch at batch ``n`` (CUDA events around each launch)."""
    model(B.random_input(mod.INPUT_SHAPE, n, seed))
    rows = []
    with warnings.catch_warnings():
        for category in getattr(mod, "PERFORMANCE_WARNINGS", ()):
            warnings.simplefilter("ignore", category)  # small launches: few blocks, by design
        for layer, kernel, grid, block, args in model.launches(n):
            ms = statistics.median(time_device(cuda, lambda k=kernel, gr=grid, bl=block, a=args: k[gr, bl](*a),
                                               runs))
            rows.append((layer, getattr(kernel, "__name__", str(kernel)), ms))
    total = sum(r[2] for r in rows)
    print(f"\nper kernel launch, batch {n} (median of {runs}; sum {total:.3f} ms):", file=out)
    print(f"{'ms':>8} {'%':>6} {'GFLOP/s':>8}  layer  kernel", file=out)
    for line in launch_lines(g, rows, n, total):
        print(line, file=out)


def launch_lines(g: nx.DiGraph, rows: list[tuple[str, str, float]], n: int, total: float) -> list[str]:
    """One line per (layer, kernel, ms) launch. GFLOP/s is shown on a layer's first launch only,
    the one that does its multiply-accumulates: a fused epilogue launched apart (a residual
    ``add2`` after its conv) does none, and must not be credited with the conv's."""
    lines = []
    seen = set()
    for layer, kernel, ms in rows:
        macs = int(g.nodes[layer]["cost"].macs) if layer in g and layer not in seen else 0
        seen.add(layer)
        gf = f"{B.gflops(macs, n, ms):8.1f}" if macs and ms > 0 else " " * 8
        lines.append(f"{ms:>8.3f} {100 * ms / max(total, 1e-12):>6.1f} {gf}  {layer}  {kernel}")
    return lines
