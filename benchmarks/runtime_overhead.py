"""What the thread-safe runtime costs a single thread (issue 13): batch-1 latency of two
builds of one generated CPU module, in one process, calls interleaved.

    python benchmarks/runtime_overhead.py OLD.py NEW.py [--batch 1] [--runs 50] [--threads 2]

OLD.py and NEW.py are two generated modules of the same network (e.g. the committed
``generated/googlenet_cpu.py`` before and after a runtime change: ``git show
REV:generated/googlenet_cpu.py > /tmp/old/googlenet_old.py``). Both get the same weights and
input; their outputs must agree within twice the float64 reference bound (1e-4 each,
tests/numerics.py), else the comparison is void. Calls alternate in ABBA order (neither
build always goes first), so load on a shared machine and cache state hit both alike; the
medians and their ratio are printed, for the wall clock and for the CPU time of
the process (less sensitive to waiting for a core on a loaded machine), with the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="the module before the change")
    ap.add_argument("new", type=Path, help="the module after the change")
    ap.add_argument("--batch", type=int, default=1, help="images per call (default: 1)")
    ap.add_argument("--runs", type=int, default=50, help="timed calls of each module (default: 50)")
    ap.add_argument("--threads", type=int, default=2, help="the modules' worker threads (default: 2)")
    args = ap.parse_args()
    old = load(args.old.resolve(), f"{args.old.stem}_old_build")
    new = load(args.new.resolve(), f"{args.new.stem}_new_build")
    assert old.PARAM_SHAPES == new.PARAM_SHAPES, "not the same network"
    params = new.init_params(0)
    models = {"old": old.Model(params), "new": new.Model(params)}
    for mod in (old, new):
        mod.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((args.batch, *new.INPUT_SHAPE)).astype(np.float32)
    ys = {k: m(x) for k, m in models.items()}  # compiles or loads the kernels
    for _ in range(3):
        for m in models.values():
            m(x)
    diff = np.abs(ys["old"].astype(np.float64) - ys["new"]).max() / np.abs(ys["old"]).max()
    assert diff <= 2e-4, f"the two builds disagree: {diff:.2e}"
    wall: dict[str, list[float]] = {"old": [], "new": []}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(args.runs):
        for k in ("old", "new") if i % 2 == 0 else ("new", "old"):  # ABBA: neither always goes first
            m = models[k]
            t, c = time.perf_counter(), time.process_time()
            m(x)
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    print(f"{new.NETWORK} batch {args.batch}, {args.threads} threads, {args.runs} interleaved runs, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, times in (("wall", wall), ("CPU (all threads)", cpu)):
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  {name}: old median {med['old'] * 1e3:.2f} ms (min {min(times['old']) * 1e3:.2f}), "
              f"new median {med['new'] * 1e3:.2f} ms (min {min(times['new']) * 1e3:.2f}), "
              f"new / old {med['new'] / med['old']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
