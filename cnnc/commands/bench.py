"""``cnnc bench FILE``: time a generated module (median of N runs) and compare it with PyTorch."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .. import bench as B
from ..codegen import BACKENDS, write
from ..codegen.kernels.options import add_kernel_options, apply_kernel_options
from ..codegen.loader import import_path
from ..draw import bench_report
from ..errors import CnncError, InputError
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from ..report import kernels as report_kernels
from . import positive, seed


def _batches(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected batch sizes like 1,8, got {text!r}") from None
    if not out or any(b < 1 for b in out):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return out


PEERS = ("torch", "onnxruntime")


def _peers(text: str) -> list[str]:
    out = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in out if t not in PEERS]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(PEERS)}, got {text!r}")
    return list(dict.fromkeys(out))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time a network's generated module, optionally against PyTorch",
        description="Compile FILE (as `cnnc compile`), warm up (Numba compiles on the first call, with a "
        "progress line), then time the median of --runs calls per batch size and print ms/batch, ms/image "
        "and GFLOP/s (2 x MACs / time). --compare torch times the source network in PyTorch "
        "(torch.nn.functional) with the same weights and threads in the same process, and the ratio "
        "cnnc/PyTorch (below 1: cnnc is faster); --compare onnxruntime (or torch,onnxruntime) adds ONNX "
        "Runtime's time and the ratio cnnc/ORT.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--target", "-t", choices=[t for t in BACKENDS], default="cpu", help="target (default: cpu)")
    p.add_argument("--batch", type=_batches, default=[1, 8], metavar="N[,N...]",
                   help="batch sizes to time (default: 1,8)")
    p.add_argument("--compare", type=_peers, default=[], metavar="torch[,onnxruntime]",
                   help="also time these peers on the same weights, interleaved with cnnc's runs (each timed "
                   f"call after a {B.SETTLE * 1e3:.0f} ms pause, so that no engine runs on the spinning threads of "
                   "the one before): torch "
                   "(torch.nn.functional, same threads), onnxruntime (the network as `cnnc export` writes it, "
                   "an ONNX Runtime CPU session with all graph optimisations and --threads intra-op threads)")
    p.add_argument("--warm", action="store_true",
                   help="time each call right after an untimed call of the same engine (back to back: a server "
                   "under load), instead of after the pause alone (a call after idle, the default); with "
                   "--compare the pause still comes first, so every engine is timed alike")
    p.add_argument("--runs", type=positive, default=10, help="timed runs per batch; the median is shown (default: 10)")
    p.add_argument("--threads", type=positive, default=B.cpu_count(),
                   help="threads for Numba, BLAS and PyTorch alike (default: all cores)")
    p.add_argument("--per-layer", action="store_true", help="also time every kernel call (largest batch)")
    p.add_argument("--report", metavar="FILE.html|FILE.svg",
                   help="write the per-layer times (implies --per-layer; cpu target) as a bar chart beside each "
                   "layer's share of the MACs and its GFLOP/s against this machine's measured GEMM rate: an SVG "
                   "picture, or a self-contained HTML page with a sortable table")
    p.add_argument("-o", "--output-dir", default="generated", metavar="DIR",
                   help="where the module is written (default: generated/)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random weights and input (default: 0)")
    add_pass_options(p, default_level=1)
    add_kernel_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    torch = None
    if "torch" in args.compare:
        from ..interop.torch import require_torch

        torch = require_torch()  # before the generated module: see cnnc.bench
    g0 = load(args.file)
    g = apply_kernel_options(apply_pass_options(g0, args), args)
    if args.target not in ("cpu", "cuda"):
        raise CnncError(f"cnnc bench times the cpu and cuda targets only (got {args.target})")
    if args.report:
        bench_report.check_path(args.report)
        if args.target != "cpu":
            raise CnncError("--report draws the per-layer times of the cpu target")
    try:
        path = write(g, args.target, args.output_dir)
    except OSError as e:
        raise InputError(f"cannot write into {args.output_dir}: {e.strerror or e}") from None
    B.set_threads(args.threads, torch)
    level = ", ".join(g.graph.get("passes") or []) or "none"
    macs = int(sum(int(g.nodes[n]["cost"].macs) for n in g.nodes))
    print(f"{g.graph.get('name')}: {path} ({args.target}; passes: {level}); {macs / 1e6:,.1f} MMACs per image; "
          f"{args.threads} thread{'s' if args.threads != 1 else ''}", file=out)
    with B.Progress("importing the module"):
        mod = import_path(path)
    if args.target == "cuda" and "onnxruntime" in args.compare:
        raise CnncError("--compare onnxruntime times the cpu target only")
    if args.target == "cuda":  # CUDA events on the GPU, PyTorch on the same GPU: see cnnc.cuda_bench
        from ..cuda_bench import run as run_cuda

        return run_cuda(args, g0, g, mod, torch, out)
    B.set_threads(args.threads, torch, mod)
    params = mod.init_params(args.seed)
    model = mod.Model(params)
    with B.Progress("compiling kernels (first call; Numba caches them beside the module)"):
        model(B.random_input(mod.INPUT_SHAPE, args.batch[0], args.seed))
    tnet = B.TorchNet(g0, params, torch) if torch is not None else None
    onet = None
    if "onnxruntime" in args.compare:
        from ..interop.onnx.peer import OrtNet

        onet = OrtNet(g0, params, args.threads)
    rows: list[B.Row] = []
    for n in args.batch:
        x = B.random_input(mod.INPUT_SHAPE, n, args.seed)
        peers = [("PyTorch", tnet), ("ONNX Runtime", onet)]
        fns = [lambda x=x: model(x)] + [lambda x=x, f=f: f(x) for _, f in peers if f is not None]
        times = B.time_group(fns, args.runs, warm=args.warm)  # interleaved; with peers, each after a pause
        ms = B.median_ms(times[0])
        row = B.Row(n, ms, ms / n, B.gflops(macs, n, ms))
        rest = iter(times[1:])
        if tnet is not None:
            row.torch_ms = B.median_ms(next(rest))
        if onet is not None:
            row.ort_ms = B.median_ms(next(rest))
        y = model(x)
        for who, f in peers:
            if f is None:
                continue
            ref = f(x)
            err = float(np.abs(y - ref).max() / max(float(np.abs(ref).max()), 1e-30))
            if not err <= 1e-3:
                print(f"warning: cnnc and {who} disagree at batch {n} (max relative difference {err:.1e})",
                      file=sys.stderr)
        rows.append(row)
    head = f"{'batch':>6} {'ms/batch':>10} {'ms/image':>10} {'GFLOP/s':>9}"
    if tnet is not None:
        head += f" {'torch ms':>10} {'ratio':>7}"
    if onet is not None:
        head += f" {'ort ms':>10} {'ort ratio':>9}"
    pause = f", interleaved, each after a {B.SETTLE * 1e3:.0f} ms pause" if tnet is not None or onet is not None else ""
    if args.warm:
        pause += " and an untimed call (--warm)"
    print(f"median of {args.runs} runs{pause}", file=out)
    print(head, file=out)
    for r in rows:
        line = f"{r.batch:>6} {r.ms:>10.3f} {r.ms_image:>10.3f} {r.gflops:>9.1f}"
        if r.torch_ms is not None:
            line += f" {r.torch_ms:>10.3f} {r.ratio:>7.2f}"
        if r.ort_ms is not None:
            line += f" {r.ort_ms:>10.3f} {r.ort_ratio:>9.2f}"
        print(line, file=out)
    if args.per_layer or args.report:
        n = max(args.batch)
        x = B.random_input(mod.INPUT_SHAPE, n, args.seed)
        steps = B.profile_steps(mod, model, x, args.runs)
        total = sum(s[3] for s in steps)
        print(f"\nper kernel call, batch {n} (median of {args.runs}; total {total:.2f} ms):", file=out)
        print(f"{'ms':>8} {'%':>6} {'GFLOP/s':>8}  layer / what / [kernel] / source", file=out)
        kernels = report_kernels(g) if args.target == "cpu" else {}
        for layer, what, where, ms in steps:
            m = B.step_macs(g, layer)
            gf = f"{B.gflops(m, n, ms):8.1f}" if m and ms > 0 else " " * 8
            kernel = f"  [{kernels[layer].at(n)}]" if layer in kernels else ""
            print(f"{ms:>8.3f} {100 * ms / total:>6.1f} {gf}  {layer}  {what}{kernel}  ({where})", file=out)
        if args.report:
            with B.Progress("measuring this machine's GEMM rate"):
                rate = bench_report.gemm_rate(args.threads)
            bench_report.write(args.report, g, bench_report.per_layer(steps, g), n, args.threads, rate)
            print(f"wrote {args.report}", file=out)
    return 0
