"""A/B one conv strategy on one shape across versions of the kernel harness module, in one process, calls alternating.

    python benchmarks/kernel_ab.py --shape 512,7,7,512,7,7,3,1,1,1 --strategy im2col_oc old_kernel_harness_cpu.py \
        new_kernel_harness_cpu.py

Build each version's module with ``python -c "from cnnc.codegen.kernels import harness;
harness.kernel_module('DIR')"`` in a checkout of that version, then copy each to a name of its own (say
``old_kernel_harness_cpu.py``): a module imports under its file's name, which Numba's disk cache records. Every
version gets the same input, weights and bias; their answers must agree (1e-4 relative to the largest output). Then
each phase (warm: calls back to back; cold: a 48 MiB array written before each call, so the weights and input come
from memory as they do in a network at batch 1) calls every version in turn for at least ``--seconds``, and prints
each version's median ms per image and its ratio to the first. Phases run twice, warm and cold alternating: the
first phase of a process ran slow. A copy of the first module as one more version shows the noise. The shape is
``C,H,W,K,Ho,Wo,k,s,p,G`` (``cnnc.codegen.kernels.ConvShape``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ab import check_agreement, import_versions  # noqa: E402

from cnnc.codegen.kernels import ConvShape, eligible, harness  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+", type=Path, help="kernel harness modules (2 or more)")
    ap.add_argument("--shape", required=True, help="C,H,W,K,Ho,Wo,k,s,p,G")
    ap.add_argument("--strategy", required=True, help="a strategy eligible for the shape (cnnc inspect's kernel)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="each phase's length (default: 2)")
    ap.add_argument("--prefetch-panels", choices=("auto", "on", "off"), default="auto",
                    help="whether the blocks over output channels ask for the next panel's weights ahead, in modules "
                    "that can (auto: as the module decides; the harness's weights fit any cache, so off)")
    args = ap.parse_args(argv)
    try:
        sh = ConvShape(*(int(v) for v in args.shape.split(",")))
    except (TypeError, ValueError):
        ap.error(f"--shape takes 10 integers C,H,W,K,Ho,Wo,k,s,p,G, got {args.shape!r}")
    if args.strategy not in eligible(sh):
        ap.error(f"{args.strategy} does not run {sh.text()} (eligible: {', '.join(eligible(sh))})")
    mods = import_versions(ap, args.modules)
    for m in mods:
        m.set_num_threads(args.threads)
        if args.prefetch_panels != "auto" and hasattr(m, "_PREFETCH_PANELS"):
            m._PREFETCH_PANELS = args.prefetch_panels == "on"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, sh.C, sh.H, sh.W)).astype(np.float32)
    w = rng.standard_normal((sh.K, sh.C // sh.G, sh.k, sh.k)).astype(np.float32)
    b = rng.standard_normal(sh.K).astype(np.float32)
    spaces = [harness.prepare(m, args.strategy, sh, x, w, b, True) for m in mods]
    check_agreement(args.modules, [harness.run(m, args.strategy, sh, x, w, b, True, ns).copy()
                                   for m, ns in zip(mods, spaces, strict=True)])
    flush = np.zeros(12 << 20, np.float32)
    for cold in (False, True, False, True):
        times: list[list[float]] = [[] for _ in mods]
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end or len(times[0]) < 5:
            for m, ns, t in zip(mods, spaces, times, strict=True):
                if cold:
                    flush += 1.0
                m._WORKERS.begin_call()  # pinned as in a Model's call
                try:
                    t0 = time.perf_counter()
                    harness.run(m, args.strategy, sh, x, w, b, True, ns)
                    t.append(time.perf_counter() - t0)
                finally:
                    m._WORKERS.end_call()
        meds = [statistics.median(t) / args.batch * 1e3 for t in times]
        print(f"{'cold' if cold else 'warm'}: " + "  ".join(f"{v:.3f} ms ({v / meds[0]:.3f})" for v in meds))


if __name__ == "__main__":
    main()
