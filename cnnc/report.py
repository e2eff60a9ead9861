"""What ``cnnc inspect`` prints: the per-layer cost table, the JSON report and the DOT graph.

The JSON report is a public contract (documented in the README)::

    {"network": str, "source": str, "input": [C, H, W], "output": [...],
     "layers": [{"name", "op", "attrs", "inputs", "shape", "kernel", "kernel_small_batch", "weights", "biases",
                 "params", "macs", "other_ops", "activations", "receptive_field"}],
     "totals": {"weights", "biases", "params", "macs", "other_ops", "activations"}}

Every count is an exact integer per image. ``layers`` lists every node but the input, in
declaration order; ``kernel`` names the CPU conv strategy of a conv layer (null for other
layers), and ``kernel_small_batch`` the one it runs instead for small batches, ``{"kernel", "below_batch"}``
(null where it runs ``kernel`` at every batch size); ``activations`` counts the output elements a layer allocates (0 for
in-place ops and views); ``totals.activations`` adds the input tensor's elements.
"""

from __future__ import annotations

import json
from math import floor, log10, prod
from typing import TYPE_CHECKING, Any

import networkx as nx

from .cost import Cost
from .explain.receptive import receptive_fields
from .graph import totals
from .ops import describe
from .shapes import fmt_shape

if TYPE_CHECKING:
    from .codegen.kernels import Choice

BYTES_PER_ELEMENT = 4  # float32


def human(n: float, unit: str = "") -> str:
    """Three significant digits with an SI prefix: 34848 -> '34.8k', 15470264320 -> '15.5G'."""
    prefixes = ["", "k", "M", "G", "T", "P"]
    x, i = float(n), 0
    while abs(x) >= 999.5 and i < len(prefixes) - 1:
        x /= 1000
        i += 1
    if i == 0:
        text = str(int(n)) if float(n).is_integer() else f"{n:.3g}"
    else:
        decimals = max(0, 2 - int(floor(log10(max(abs(x), 1.0)))))
        text = f"{x:.{decimals}f}"
    return f"{text} {prefixes[i]}{unit}" if unit else f"{text}{prefixes[i]}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def kernels(g: nx.DiGraph) -> dict[str, Choice]:
    """``{conv layer: CPU kernel strategies}``: the cost model's choice, or the one forced with ``--kernel``, as the
    CPU module runs them (a 1x1 conv between blocked tensors runs direct1x1_oc); the model's choices alone for a
    graph the CPU backend cannot schedule."""
    from .codegen.cpu import layer_choices
    from .codegen.kernels import choices
    from .errors import CnncError

    try:
        return layer_choices(g)
    except CnncError:
        return choices(g)


def layer_rows(g: nx.DiGraph) -> list[dict[str, Any]]:
    fields = receptive_fields(g)
    chosen = kernels(g)
    rows = []
    for n in g.nodes:
        d = g.nodes[n]
        if d["op"].kind == "input":
            continue
        c: Cost = d["cost"]
        rows.append({
            "name": n,
            "op": d["op"].kind,
            "attrs": _jsonable(dict(d["op"].attrs)),
            "inputs": list(d["inputs"]),
            "shape": list(d["shape"]),
            "kernel": chosen[n].kernel if n in chosen else None,
            "kernel_small_batch": ({"kernel": chosen[n].small, "below_batch": chosen[n].below}
                                   if n in chosen and chosen[n].small is not None else None),
            **c.as_dict(),
            "receptive_field": fields[n].as_dict() if fields[n] is not None else None,
        })
    return rows


def to_json(g: nx.DiGraph) -> str:
    """The JSON report (deterministic: same graph, same bytes)."""
    t = totals(g).as_dict()
    doc = {
        "network": g.graph["name"],
        "source": g.graph["source"],
        "input": list(g.nodes[g.graph["input"]]["shape"]),
        "output": list(g.nodes[g.graph["output"]]["shape"]),
        "passes": list(g.graph.get("passes", [])),
        "layers": layer_rows(g),
        **({"memory": dict(g.graph["memory"])} if g.graph.get("memory") else {}),
        "totals": {k: t[k] for k in ("weights", "biases", "params", "macs", "other_ops", "activations")},
    }
    return json.dumps(doc, indent=2) + "\n"


def _op_summary(g: nx.DiGraph, n: str) -> str:
    return describe(g.nodes[n]["op"])


def to_table(g: nx.DiGraph) -> str:
    """The per-layer table with totals, in human units (3 significant digits)."""
    fields = receptive_fields(g)
    head = ("layer", "op", "kernel", "output", "params", "MACs", "activations", "receptive field")
    chosen = kernels(g)
    rows: list[tuple[str, ...]] = []
    inp = g.graph["input"]
    ish = g.nodes[inp]["shape"]

    def rf(n: str) -> str:
        f = fields[n]
        return f.text(jump=len(g.nodes[n]["shape"]) == 3) if f is not None else ""

    rows.append((inp, "input", "", fmt_shape(ish), "", "", human(prod(ish) * BYTES_PER_ELEMENT, "B"), rf(inp)))
    for n in g.nodes:
        d = g.nodes[n]
        if d["op"].kind == "input":
            continue
        c: Cost = d["cost"]
        acts = human(c.activations * BYTES_PER_ELEMENT, "B") if c.activations else "(in place)"
        rows.append((n, _op_summary(g, n), chosen[n].text() if n in chosen else "", fmt_shape(d["shape"]),
                     human(c.params) if c.params else "", human(c.macs) if c.macs else "", acts, rf(n)))
    t = totals(g)
    foot = ("total", "", "", fmt_shape(g.nodes[g.graph["output"]]["shape"]), human(t.params), human(t.macs),
            human(t.activations * BYTES_PER_ELEMENT, "B"), "")
    widths = [max(len(r[i]) for r in [head, foot, *rows]) for i in range(len(head))]
    right = {4, 5, 6}

    def line(r: tuple[str, ...]) -> str:
        cells = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [f"network {g.graph['name']} ({g.graph['source']})"]
    if g.graph.get("passes"):
        out.append(f"passes: {', '.join(g.graph['passes'])}")
    out += [line(head), rule, *(line(r) for r in rows), rule, line(foot)]
    out.append(
        f"exact: {t.params:,} params ({t.weights:,} weights + {t.biases:,} biases), {t.macs:,} MACs "
        f"(= {2 * t.macs:,} FLOPs), {t.other_ops:,} other ops, {t.activations:,} activation values "
        f"with the input ({human(t.activations * BYTES_PER_ELEMENT, 'B')} per image in float32)"
    )
    mem = g.graph.get("memory")
    if mem:
        out.append(f"memory plan: peak activation memory {mem['before']:,} -> {mem['after']:,} values per image "
                   f"({human(mem['before'] * BYTES_PER_ELEMENT, 'B')} -> "
                   f"{human(mem['after'] * BYTES_PER_ELEMENT, 'B')} in float32)")
    return "\n".join(out) + "\n"


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT: one box per layer, block instances as clusters, every edge labelled
    with the shape it carries. Deterministic."""
    lines = [f"digraph {_dot_id(g.graph['name'])} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    clusters: dict[tuple[str, ...], list[str]] = {}
    for n in g.nodes:
        clusters.setdefault(tuple(g.nodes[n].get("block", ())), []).append(n)

    def node_line(n: str) -> str:
        d = g.nodes[n]
        c: Cost = d["cost"]
        label = f"{n}\\n{_op_summary(g, n)}\\n{fmt_shape(d['shape'])}"
        if c.macs:
            label += f"\\n{human(c.macs)} MACs"
        return f"  {_dot_id(n)} [label={_dot_id(label).replace(chr(92) * 2 + 'n', chr(92) + 'n')}];"

    for i, (block, members) in enumerate(clusters.items()):
        if not block:
            lines += [node_line(n) for n in members]
            continue
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_id('/'.join(block))}; style=rounded; color=gray60;")
        lines += ["  " + node_line(n) for n in members]
        lines.append("  }")
    for n in g.nodes:
        for i in g.nodes[n]["inputs"]:
            lines.append(f"  {_dot_id(i)} -> {_dot_id(n)} [label={_dot_id(fmt_shape(g.nodes[i]['shape']))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
