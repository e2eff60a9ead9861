"""``cnnc explain FILE [LAYER...]``: the worked arithmetic of every layer (or the ones named), in
the lecture's notation: output size, parameters, MACs, memory, receptive field, merge channels."""

from __future__ import annotations

import argparse
import difflib
import json

from ..errors import InputError
from ..explain.claims import scope
from ..explain.derive import derive, summary
from ..frontend import load
from . import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="show how every layer's size, parameters, MACs, memory and receptive field are computed",
        description="Parse FILE and print, for each layer (or each LAYER named, by name or block path: "
        "`conv1`, `i3a` for a whole inception module, `stage1/conv1`), the derivation with the numbers "
        "filled in: output size (W - F + 2P)/S + 1 and its rounding, parameters (F*F*C_in/groups)*K + K, "
        "MACs and activation memory as products, the receptive field on the input (through branches), and "
        "for a merge the channels of each branch. --format json gives the same as structured data.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("layers", nargs="*", metavar="LAYER",
                   help="layer names or block paths as `cnnc inspect` lists them (default: every layer)")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    g = load(args.file)
    names: list[str] | None = None
    groups: list[tuple[str, list[str]]] = []  # named block paths: their totals
    if args.layers:
        names = []
        for path in args.layers:
            found = scope(g, path)
            if not found:
                close = difflib.get_close_matches(path, list(g.nodes), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"{args.file}: no layer or block named {path!r}{hint}; `cnnc inspect "
                                 f"{args.file}` lists the layer names")
            names += found
            if len(found) > 1:
                groups.append((path, found))
    records = derive(g, names)
    if args.format == "json":
        doc = {"network": g.graph["name"], "source": g.graph["source"], "layers": [r.as_dict() for r in records]}
        text = json.dumps(doc, indent=2) + "\n"
    else:
        text = f"network {g.graph['name']} ({g.graph['source']})\n" + "\n".join(r.text() for r in records) + "\n"
        text += "".join(f"total of {summary(g, path, found)}\n" for path, found in groups)
    emit(text, args.output)
    return 0
