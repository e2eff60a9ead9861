"""``cnnc import MODEL.onnx -o NET.cnn``: an ONNX model as a readable ``.cnn`` file and its weights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import params as P
from ..errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="turn an ONNX model into a .cnn file and its weights (.npz)",
        description="Read MODEL (an ONNX file; weights inline or as external data beside it), map its nodes "
        "onto cnnc layers and write a readable .cnn file: layers labelled after the ONNX node names, branches "
        "as concat { } / add { }, and merges that repeat with different widths as one parameterised block. "
        "The weights go to --params-out (default: NET.npz beside NET.cnn). Unsupported operators are all "
        "listed, with their counts and first nodes. "
        'Needs the onnx extra: pip install -e ".[onnx]".',
    )
    p.add_argument("model", help="an ONNX model (.onnx)")
    p.add_argument("-o", "--output", metavar="NET.cnn",
                   help="the .cnn file to write (default: MODEL's name with .cnn, in the current directory)")
    p.add_argument("--params-out", metavar="NET.npz",
                   help="where to write the weights (default: the .cnn path with .npz)")
    p.add_argument("--name", help="the network name (default: the ONNX graph name, else the output file name)")
    p.add_argument("--no-blocks", action="store_true",
                   help="write repeated structures out in full instead of as blocks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.onnx import require_onnx
    from ..interop.onnx.importer import identifier, read_model, to_graph
    from ..interop.onnx.writer import to_cnn

    require_onnx()
    out = Path(args.output or Path(args.model).with_suffix(".cnn").name)
    npz = Path(args.params_out) if args.params_out else out.with_suffix(".npz")
    model = read_model(args.model)
    name = args.name or model.graph.name or out.stem
    g, params, _ = to_graph(model, identifier(name))
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x) or "unknown"
    header = [f"imported by cnnc from {Path(args.model).name} (producer: {producer}); "
              f"weights in {npz.name}"]
    text, parsed, renamed = to_cnn(g, params, header=header, blocks=not args.no_blocks, source=str(out))
    try:
        out.write_text(text, encoding="utf-8")
        P.save(npz, renamed)
    except OSError as e:
        raise InputError(f"cannot write {e.filename}: {e.strerror}") from None
    n_blocks = text.count("\nblock ")
    print(f"wrote {out} ({len(text.splitlines())} lines, {parsed.number_of_nodes() - 1} layers, "
          f"{n_blocks} block{'s' if n_blocks != 1 else ''}) and {npz} ({len(renamed)} arrays)", file=sys.stdout)
    return 0
