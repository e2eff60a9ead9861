"""A/B two or more versions of a generated CPU module in one process, their calls alternating.

    python benchmarks/ab.py --batch 1 --runs 40 old/resnet50_cpu.py generated/resnet50_cpu.py

Each file is imported as ``cnnc`` imports a generated module (``generated.<stem>`` inside a package, else
``<stem>``: the name its Numba cache beside it was written under), so the files need distinct names (copy the old
version to, say, ``/tmp/ab/old_resnet50_cpu.py``). Every version gets the same weights
(``init_params(0)`` of the first) and the same input, their answers must agree (1e-4 relative), and then ``runs``
rounds call each version once, in turn. Prints each version's median ms and its ratio to the first. On a machine
whose speed drifts (a shared VM), this is the measurement to quote for a change: a drift hits every version alike.

``--steps`` also prints, per step of ``STEPS``, each version's median ms (the time from the previous step's end, or
from the call's start, to the step's end: ``Model.trace``) and the last version's difference from the first. A change
to one kernel shows there when the whole call's noise hides it. The versions must share their steps (the same
network).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from cnnc.codegen.loader import import_path, module_name_for


def import_versions(ap: argparse.ArgumentParser, paths: list[Path]) -> list:
    """The modules at ``paths``, imported as ``cnnc`` imports a generated module; ``ap.error`` unless there are two
    or more, each under a name of its own (the name its Numba cache beside it was written under)."""
    if len(paths) < 2:
        ap.error("give at least two module files")
    names = [module_name_for(p) for p in paths]
    if len(set(names)) < len(names):
        ap.error(f"the modules must import under distinct names, got {names}")
    return [import_path(p) for p in paths]


def check_agreement(paths: list[Path], outs: list[np.ndarray]) -> None:
    """Exit unless every version's output (``outs[i]`` from ``paths[i]``) is within 1e-4 of the first's, relative to
    its largest element."""
    for p, y in zip(paths[1:], outs[1:], strict=True):
        err = float(np.abs(y - outs[0]).max() / np.abs(outs[0]).max())
        if not err <= 1e-4:
            sys.exit(f"{p} disagrees with {paths[0]} (max relative difference {err:.1e})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+", type=Path, help="generated CPU modules of one network (2 or more)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.0, metavar="SECONDS",
                    help="sleep this long before each timed call: the latency of a call after the machine idled "
                    "(as `cnnc bench --compare` times every engine), rather than of calls back to back")
    ap.add_argument("--steps", action="store_true", help="also print each step's median ms per version")
    args = ap.parse_args(argv)
    mods = import_versions(ap, args.modules)
    for m in mods:
        m.set_num_threads(args.threads)
    params = mods[0].init_params(0)
    models = [m.Model(params) for m in mods]
    x = np.random.default_rng(0).standard_normal((args.batch, *mods[0].INPUT_SHAPE)).astype(np.float32)
    check_agreement(args.modules, [model(x) for model in models])  # the first call compiles (or loads) the kernels
    if args.steps and len({m.STEPS for m in mods}) > 1:
        sys.exit("--steps needs versions with the same steps (STEPS differs)")
    times: list[list[float]] = [[] for _ in models]
    steps: list[dict[int, list[float]]] = [{} for _ in models]
    stamps: list[tuple[int, float]] = []

    def tick(i: int) -> None:
        stamps.append((i, time.perf_counter()))

    for _ in range(args.runs):
        for model, t, per in zip(models, times, steps, strict=True):
            if args.pause > 0:
                time.sleep(args.pause)
            stamps.clear()
            t0 = time.perf_counter()
            if args.steps:
                model.trace(x, tick)
            else:
                model(x)
            t.append(time.perf_counter() - t0)
            last = t0
            for i, at in stamps:
                per.setdefault(i, []).append(at - last)
                last = at
    base = statistics.median(times[0])
    for p, t in zip(args.modules, times, strict=True):
        med = statistics.median(t)
        print(f"{med * 1e3:9.2f} ms  {med / base:6.3f}  {p}")
    if args.steps:
        print("per step, ms (medians of each version, then the last one's difference from the first):")
        for i, (layer, what, _) in enumerate(mods[0].STEPS):
            meds = [statistics.median(per[i]) * 1e3 for per in steps]
            print(" ".join(f"{m:8.3f}" for m in meds) + f" {meds[-1] - meds[0]:+8.3f}  {layer} ({what})")


if __name__ == "__main__":
    main()
