"""``cnnc export FILE -o net.onnx``: a network and its weights as an ONNX model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import params as P
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from . import seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a network and its weights as an ONNX model (for ONNX Runtime, Netron, ...)",
        description="Write FILE as an ONNX model (opset 17): one node per layer named after it, the .cnn "
        "file:line:col of each layer in its doc string, the weights as initializers and a dynamic batch "
        "dimension N. The model passes onnx.checker.check_model(full_check=True). The graph is the source "
        "network (-O0) unless -O1 asks for the optimised one (folded batchnorms, fused convs). "
        'Needs the onnx extra: pip install -e ".[onnx]".',
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("-o", "--output", metavar="NET.onnx",
                   help="the ONNX file to write (default: FILE's name with .onnx, in the current directory)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--params", metavar="P.npz", help="weights (.npz, float32, PyTorch layout; default: "
                       "cnnc.params.init with --seed)")
    group.add_argument("--seed", type=seed, default=0, help="seed of the He-normal weights (default: 0)")
    p.add_argument("--external-data", action="store_true",
                   help="store the weights in NET.onnx.data beside the model (for models over 2 GB)")
    add_pass_options(p, default_level=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.onnx import export as E

    E.require_onnx()
    g = apply_pass_options(load(args.file), args)
    params = P.load(args.params, g) if args.params else P.init(g, args.seed)
    model = E.to_onnx(g, params)
    path = E.save(model, args.output or Path(args.file).with_suffix(".onnx").name, external_data=args.external_data)
    print(f"wrote {path} ({len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers, "
          f"opset {E.OPSET})", file=sys.stdout)
    return 0
