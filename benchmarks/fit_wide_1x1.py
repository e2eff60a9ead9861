"""Fit the cost of direct1x1_oc's wide panels (cnnc.codegen.kernels.oc_blocks.WIDE_RATE, WIDE_BLOCK_STORE).

    python benchmarks/fit_wide_1x1.py [--threads T] [--seconds S] [--save FILE.jsonl]

Times direct1x1, direct1x1_oc and gemm1x1 on every 1x1 stride-1 conv shape of archs/ (NCHW in and out, each kernel
through the backend's own call line, the three interleaved) at batch 1 and 8; then fits the two constants of the
wide blocks' estimate (least squares of the log error) to the shapes whose output channels fill wide panels, taking
for each the direct1x1 estimate scaled by the measured direct1x1_oc / direct1x1 time (per image, averaged over the
two batches, as the cost model averages its COST_BATCHES). Prints the fit, then how often the model picks the
fastest of the three with the fitted constants and with those in the code, and the mean slowdown of its picks.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kernels import shapes  # noqa: E402

from cnnc.codegen.kernels import STRATEGIES, ConvShape, cost, eligible, harness  # noqa: E402
from cnnc.codegen.kernels import oc_blocks as oc  # noqa: E402

KERNELS = ("direct1x1", "direct1x1_oc", "gemm1x1")


def measure(threads: int, seconds: float) -> list[tuple[ConvShape, dict[str, float]]]:
    """``(shape, {kernel: seconds per image, the mean of batch 1 and batch 8})`` for every 1x1 shape of archs/."""
    mod = harness.kernel_module(tempfile.mkdtemp(prefix="cnnc-fit-"))
    mod.set_num_threads(threads)
    rng = np.random.default_rng(0)
    out = []
    for sh, where in shapes(int(4e9)):
        if sh.k != 1 or sh.s != 1 or sh.G != 1:
            continue
        names = [k for k in KERNELS if k in eligible(sh)]
        per_image: dict[str, float] = {k: 0.0 for k in names}
        for n in (1, 8):
            x = rng.standard_normal((n, sh.C, sh.H, sh.W)).astype(np.float32)
            w = rng.standard_normal((sh.K, sh.C, 1, 1)).astype(np.float32)
            b = rng.standard_normal(sh.K).astype(np.float32)
            prepared = {k: harness.prepare(mod, k, sh, x, w, b, True) for k in names}
            times: dict[str, list[float]] = {k: [] for k in names}
            for k in names:
                harness.run(mod, k, sh, x, w, b, True, prepared[k])
            end = time.time() + seconds
            while time.time() < end:
                for k in names:
                    t = time.perf_counter()
                    harness.run(mod, k, sh, x, w, b, True, prepared[k])
                    times[k].append(time.perf_counter() - t)
            for k in names:
                per_image[k] += float(np.median(times[k])) / n / 2
        print(f"{sh.C:5d}->{sh.K:5d} {sh.Ho:3d}x{sh.Wo:<3d} {where:<28} wide={int(oc.wide_panels(sh))} "
              + " ".join(f"{k} {v * 1e3:.3f}" for k, v in per_image.items()), flush=True)
        out.append((sh, per_image))
    return out


def wide_seconds(sh: ConvShape, rate: float, store: float) -> float:
    return oc.wide_product_seconds(sh.K, sh.Ho * sh.Wo, sh.C, rate, store)


def picks(rows, rate: float, store: float) -> tuple[int, float]:
    """(shapes on which the model picks the fastest kernel, mean measured slowdown of its picks)."""
    right, loss = 0, []
    for sh, t in rows:
        est = {k: wide_seconds(sh, rate, store) if k == "direct1x1_oc" and oc.wide_panels(sh)
               else cost(STRATEGIES[k], sh) for k in t}
        pick = min(est, key=est.get)
        right += t[pick] == min(t.values())
        loss.append(t[pick] / min(t.values()))
    return right, float(np.mean(loss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="module threads (default: 2)")
    ap.add_argument("--seconds", type=float, default=0.6, help="timing per shape and batch (default: 0.6)")
    ap.add_argument("--save", help="write the timings here (JSON lines)")
    args = ap.parse_args()
    rows = measure(args.threads, args.seconds)
    if args.save:
        with open(args.save, "w") as f:
            for sh, t in rows:
                f.write(json.dumps({"shape": sh.text(), **t}) + "\n")
    wide = [(sh, t) for sh, t in rows if oc.wide_panels(sh) and "direct1x1_oc" in t]

    def residuals(p: np.ndarray) -> list[float]:
        return [math.log(wide_seconds(sh, p[0], p[1] * 1e-7)
                         / (cost(STRATEGIES["direct1x1"], sh) * t["direct1x1_oc"] / t["direct1x1"]))
                for sh, t in wide]

    fit = least_squares(residuals, [1.1, 4.0], bounds=([0.3, 0.0], [5.0, 100.0]))
    rate, store = fit.x[0], fit.x[1] * 1e-7
    err = np.abs(fit.fun)
    print(f"\n{len(wide)} wide shapes: WIDE_RATE {rate:.3f}, WIDE_BLOCK_STORE {store:.2e} "
          f"(log error rms {np.sqrt(np.mean(err ** 2)):.3f}, max {err.max():.3f})")
    for label, (r, s) in (("fitted", (rate, store)), ("in the code", (oc.WIDE_RATE, oc.WIDE_BLOCK_STORE))):
        right, loss = picks(rows, r, s)
        print(f"{label}: the fastest of {', '.join(KERNELS)} on {right} of {len(rows)} shapes, "
              f"{(loss - 1) * 100:.1f}% slower than the fastest on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
