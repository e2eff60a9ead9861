"""Readable dumps of a graph between passes (``--dump-after PASS|all``): ``.cnn``-like text or JSON."""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from ..graph import ordered
from ..ops import KINDS
from ..shapes import fmt_shape

FORMATS = ("text", "json")


def _attr(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _parts(parts: tuple[dict, ...]) -> str:
    out = []
    for p in parts:
        s = f"{p['node']}:{p['out']}"
        if p.get("bn"):
            s += f"+{p['bn']}"
        out.append(s)
    return "[" + ", ".join(out) + "]"


def op_text(op) -> str:
    """``conv(64, 3, pad=1, act=relu)``-style text of an op: required attributes positionally,
    others only where they differ from the default (pass-made attributes always)."""
    spec = KINDS.get(op.kind)
    args = []
    for k, v in op.attrs.items():
        a = spec.attr(k) if spec else None
        if v is None or (a is not None and not a.required and v == a.default):
            continue
        if op.kind in ("maxpool", "avgpool") and k == "stride" and v == op.get("kernel"):
            continue
        text = _parts(v) if k == "parts" else _attr(v)
        args.append(text if a is not None and a.required else f"{k}={text}")
    return f"{op.kind}({', '.join(args)})" if args else op.kind


def to_text(g: nx.DiGraph, title: str = "") -> str:
    """One line per node: ``name = op <- inputs  # shape, MACs, buffer``."""
    lines = [f"# {title}" if title else f"# {g.graph.get('name')}",
             f"# passes: {', '.join(g.graph.get('passes', [])) or '(none)'}",
             f"network {g.graph.get('name')}"]
    for n in ordered(g):
        d = g.nodes[n]
        op = d["op"]
        if op.kind == "input":
            lines.append(f"input {fmt_shape(d['shape'])}    # {n}")
            continue
        note = [fmt_shape(d["shape"])]
        if d["cost"].macs:
            note.append(f"{d['cost'].macs:,} MACs")
        if "buffer" in d:
            note.append(f"buffer {d['buffer']}")
        lines.append(f"{n} = {op_text(op)} <- {', '.join(d['inputs'])}    # {', '.join(note)}")
    lines.append(f"output {g.graph['output']}")
    if "buffers" in g.graph:
        lines.append("# buffers (elements per image): "
                     + ", ".join(f"{b}: {s:,}" for b, s in g.graph["buffers"].items()))
    return "\n".join(lines) + "\n"


def to_json(g: nx.DiGraph, title: str = "") -> str:
    """The graph as JSON: graph attributes, then every node in order (exact integers)."""
    nodes = []
    for n in ordered(g):
        d = g.nodes[n]
        attrs = {k: ([dict(p) for p in v] if k == "parts" else v) for k, v in d["op"].attrs.items()}
        item = {"name": n, "kind": d["op"].kind, "attrs": attrs, "inputs": list(d["inputs"]),
                "shape": list(d["shape"]), "cost": d["cost"].as_dict()}
        if "buffer" in d:
            item["buffer"] = d["buffer"]
        nodes.append(item)
    doc = {"title": title, "name": g.graph.get("name"), "input": g.graph["input"],
           "output": g.graph["output"], "passes": list(g.graph.get("passes", [])), "nodes": nodes}
    if "buffers" in g.graph:
        doc["buffers"] = {str(k): v for k, v in g.graph["buffers"].items()}
    if "memory" in g.graph:
        doc["memory"] = dict(g.graph["memory"])
    return json.dumps(doc, indent=1, default=str) + "\n"


def dump(g: nx.DiGraph, fmt: str = "text", title: str = "") -> str:
    """The graph in format ``fmt`` (``text`` or ``json``)."""
    return to_json(g, title) if fmt == "json" else to_text(g, title)
