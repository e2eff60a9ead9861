"""``cnnc compile FILE``: render a network into importable modules, ``generated/<net>_<target>.py``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..codegen import BACKENDS, targets, write
from ..codegen.kernels.options import add_kernel_options, apply_kernel_options
from ..errors import CnncError
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile",
        help="generate the Numba CPU (and CUDA) module of a network",
        description="Parse FILE, run the optimisation passes (-O1 by default) and write "
        "DIR/<network>_<target>.py: a module importing only numpy and numba, with INPUT_SHAPE, "
        "OUTPUT_SHAPE, PARAM_SHAPES, LAYERS, init_params, load_params, save_params, Model and forward. "
        "Compiling twice gives identical bytes.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--target", "-t", choices=[*BACKENDS, "all"], default="cpu",
                   help="code-generation target (default: cpu; all: every installed backend)")
    p.add_argument("-o", "--output-dir", default="generated", metavar="DIR",
                   help="directory for the generated modules (default: generated/)")
    add_pass_options(p, default_level=1)
    add_kernel_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = apply_kernel_options(apply_pass_options(load(args.file), args), args)
    wanted = targets() if args.target == "all" else [args.target]
    if not wanted:
        raise CnncError("no code-generation backend is installed")
    outdir = Path(args.output_dir)
    if outdir.exists() and not outdir.is_dir():
        raise CnncError(f"{outdir} exists and is not a directory")
    for t in wanted:
        try:
            path = write(g, t, outdir)
        except OSError as e:
            raise CnncError(f"cannot write into {outdir}: {e.strerror or e}") from None
        passes = ", ".join(g.graph.get("passes") or []) or "none"
        print(f"wrote {path} ({t}; passes: {passes})", file=sys.stdout)
    return 0
