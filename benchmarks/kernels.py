"""Every CPU conv strategy on every distinct conv shape of archs/: GFLOP/s and error against float64.

    python benchmarks/kernels.py [--batch N] [--threads T] [--max-macs M] [--seconds S]

One module holding every kernel is compiled once (cnnc.codegen.kernels.harness); each (shape, strategy) pair runs
the backend's own call line for at least S seconds (median of the timed calls), and its output is compared with the
float64 reference at the same batch. Prints one line per shape (the cost model's choice marked with *), then per
strategy the median GFLOP/s over its eligible shapes, the largest error and how often it is the fastest. Quote
ratios measured in one run, and the load average printed first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnc.codegen.kernels import STRATEGIES, choose, eligible, harness, shape_of_node  # noqa: E402
from cnnc.frontend import load  # noqa: E402
from cnnc.passes.manager import run_pipeline  # noqa: E402


def shapes(max_macs: int):
    seen = {}
    for p in sorted((ROOT / "archs").glob("*.cnn")):
        g = run_pipeline(load(p), 1, log=None)
        for n in g.nodes:
            if g.nodes[n]["op"].kind == "conv":
                sh = shape_of_node(g, n)
                if sh.macs <= max_macs:
                    seen.setdefault(sh, f"{p.stem}:{n}")
    return sorted(seen.items(), key=lambda kv: kv[0].macs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1, help="images per call (default: 1)")
    ap.add_argument("--threads", type=int, default=2, help="module threads (default: 2)")
    ap.add_argument("--max-macs", type=float, default=4e8, help="skip shapes with more MACs per image (default: 4e8)")
    ap.add_argument("--seconds", type=float, default=0.2, help="minimum timing per pair (default: 0.2)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}; batch {args.batch}; {args.threads} threads")
    mod = harness.kernel_module(tempfile.mkdtemp(prefix="cnnc-kernels-"))
    mod.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = {n: [] for n in STRATEGIES}
    errors: dict[str, float] = {n: 0.0 for n in STRATEGIES}
    wins: dict[str, int] = {n: 0 for n in STRATEGIES}
    right = 0
    table = shapes(int(args.max_macs))
    for sh, where in table:
        n = args.batch
        x = rng.standard_normal((n, sh.C, sh.H, sh.W)).astype(np.float32)
        w = rng.standard_normal((sh.K, sh.C // sh.G, sh.k, sh.k)).astype(np.float32)
        b = rng.standard_normal(sh.K).astype(np.float32)
        ref = harness.reference(sh, x, w, b, True)
        cells, best = [], {}
        for name in eligible(sh):
            ns = harness.prepare(mod, name, sh, x, w, b, True)
            err = harness.rel_err(harness.run(mod, name, sh, x, w, b, True, ns), ref)
            gf = 2 * sh.macs * n / harness.median_seconds(mod, name, sh, x, w, b, True, ns, args.seconds) / 1e9
            rates[name].append(gf)
            errors[name] = max(errors[name], err)
            best[name] = gf
            cells.append(f"{name}{'*' if name == choose(sh) else ''} {gf:6.1f} GF/s (err {err:.1e})")
        fastest = max(best, key=best.get)
        wins[fastest] += 1
        right += fastest == choose(sh)
        print(f"{sh.text():<52} {where:<28} " + " | ".join(cells), flush=True)
    print(f"\ncost model picked the fastest strategy on {right} of {len(table)} shapes")
    print(f"{'strategy':<10} {'shapes':>6} {'median GF/s':>11} {'fastest on':>10} {'max error':>10}")
    for name in STRATEGIES:
        if rates[name]:
            print(f"{name:<10} {len(rates[name]):>6} {statistics.median(rates[name]):>11.1f} {wins[name]:>10} "
                  f"{errors[name]:>10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
