"""The graph verifier: checks the graph contract (:mod:`cnnc.graph`) and the pass annotations
(:mod:`cnnc.passes`) hold, and names the pass that broke them.

Checked: the graph is acyclic and its insertion order is topological; edges are exactly
``u -> v`` for ``u in v.inputs``, with edge shape ``u``'s shape; every shape and cost is what
:func:`cnnc.shapes.infer_shape` / :func:`cnnc.cost.op_cost` give from the inputs (so concat and
add operands agree); node names are non-empty strings and parameter names unique; there is
one input node and the output exists; ``slice`` ranges fit; fused parts name distinct source
layers with parameters; an in-place concat's inputs write only into it; a memory plan gives
every node a buffer large enough, and tensors whose lifetimes overlap share a buffer only
where one is a view or an in-place update of the other.
"""

from __future__ import annotations

import networkx as nx

from ..cost import op_cost
from ..errors import GraphError, ShapeError
from ..shapes import infer_shape
from .concat_elim import MATERIALISING
from .fuse_relu import FUSABLE


def problems(g: nx.DiGraph) -> list[str]:
    """Every contract violation found in ``g`` (empty when it is sound)."""
    errs: list[str] = []
    inp, out = g.graph.get("input"), g.graph.get("output")
    if inp not in g:
        return [f"the input node {inp!r} does not exist"]
    if out not in g:
        return [f"the output node {out!r} does not exist"]
    if not nx.is_directed_acyclic_graph(g):
        return [f"the graph has a cycle: {nx.find_cycle(g)}"]
    inputs = [n for n in g.nodes if g.nodes[n]["op"].kind == "input"]
    if inputs != [inp]:
        errs.append(f"expected exactly one input node ({inp!r}), found {inputs}")
    seen: set[str] = set()
    for n in g.nodes:
        d = g.nodes[n]
        if not isinstance(n, str) or not n:
            errs.append(f"node name {n!r} is not a non-empty string")
            continue
        ins = d.get("inputs")
        if ins is None or "op" not in d or "shape" not in d:
            errs.append(f"node {n!r} lacks op, inputs or shape")
            continue
        for i in ins:
            if i not in g:
                errs.append(f"node {n!r} reads {i!r}, which does not exist")
            elif i not in seen:
                errs.append(f"node {n!r} comes before its input {i!r} in the node order")
        seen.add(n)
        if set(g.predecessors(n)) != set(ins):
            errs.append(f"node {n!r}: edges from {sorted(g.predecessors(n))} but inputs {ins}")
            continue
        if any(i not in g for i in ins):
            continue
        for i in set(ins):
            if g.edges[i, n].get("shape") != g.nodes[i]["shape"]:
                errs.append(f"edge {i!r} -> {n!r} has shape {g.edges[i, n].get('shape')}, "
                            f"but {i!r} is {g.nodes[i]['shape']}")
        if d["op"].kind == "input":
            continue
        shapes = [g.nodes[i]["shape"] for i in ins]
        try:
            shape = infer_shape(d["op"], shapes)
        except ShapeError as e:
            errs.append(f"node {n!r} ({d['op'].kind}): {e.message}")
            continue
        if tuple(d["shape"]) != tuple(shape):
            errs.append(f"node {n!r} has shape {d['shape']} but its inputs give {shape}")
        elif d.get("cost") != op_cost(d["op"], shapes, shape):
            errs.append(f"node {n!r} has a stale cost")
    if errs:
        return errs
    errs += _check_annotations(g)
    return errs


def _check_annotations(g: nx.DiGraph) -> list[str]:
    errs: list[str] = []
    params = g.graph.get("params")
    param_names = {name for name, _ in params} if params else None
    if params and len(param_names) != len(params):
        errs.append("g.graph['params'] lists a parameter name twice")
    part_owner: dict[str, str] = {}
    for n in g.nodes:
        op = g.nodes[n]["op"]
        if op.get("act") not in (None, "relu"):
            errs.append(f"node {n!r}: unknown act {op.get('act')!r}")
        if op.get("act") and op.kind not in FUSABLE:
            errs.append(f"node {n!r}: act on a {op.kind}")
        if op.get("residual") and op.kind != "conv":
            errs.append(f"node {n!r}: a fused residual on a {op.kind}")
        parts = op.get("parts")
        if parts:
            total = sum(p["out"] for p in parts)
            width = op["filters"] if op.kind == "conv" else op["out"]
            if total != width:
                errs.append(f"node {n!r}: parts add up to {total} outputs, the op has {width}")
            for p in parts:
                src = p["node"]
                if src in part_owner:
                    errs.append(f"source layer {src!r} is a part of both {part_owner[src]!r} and {n!r}")
                part_owner[src] = n
                if param_names is not None and f"{src}.weight" not in param_names:
                    errs.append(f"node {n!r}: part {src!r} has no parameter {src}.weight")
                if param_names is not None and p["bn"] and f"{p['bn']}.running_var" not in param_names:
                    errs.append(f"node {n!r}: part {src!r} folds {p['bn']!r}, which has no parameters")
        if op.kind == "concat" and op.get("inplace"):
            for i in g.nodes[n]["inputs"]:
                kind = g.nodes[i]["op"].kind
                concats = [r for r in g.successors(i) if g.nodes[r]["op"].kind == "concat"]
                if kind not in MATERIALISING or concats != [n] or g.nodes[n]["inputs"].count(i) != 1:
                    errs.append(f"in-place concat {n!r}: input {i!r} ({kind}) cannot write into it")
    if "buffers" in g.graph or any("buffer" in g.nodes[n] for n in g.nodes):
        errs += _check_plan(g)
    return errs


def _check_plan(g: nx.DiGraph) -> list[str]:
    from .memplan import elements, lifetimes, owners

    errs: list[str] = []
    sizes = g.graph.get("buffers") or {}
    owner = owners(g)
    for n in g.nodes:
        b = g.nodes[n].get("buffer")
        if b not in sizes:
            errs.append(f"node {n!r} has buffer {b!r}, which is not planned")
        elif b != g.nodes[owner[n]].get("buffer"):
            errs.append(f"node {n!r} must share buffer with {owner[n]!r}")
        elif sizes[b] < elements(g, owner[n]):
            errs.append(f"buffer {b} holds {sizes[b]} elements, {owner[n]!r} needs {elements(g, owner[n])}")
    if errs:
        return errs
    life = lifetimes(g, owner)
    by_buffer: dict[int, list[str]] = {}
    for o in life:
        by_buffer.setdefault(g.nodes[o]["buffer"], []).append(o)
    for b, os in by_buffer.items():
        spans = sorted((life[o][0], life[o][1], o) for o in os)
        for (s0, e0, o0), (s1, _, o1) in zip(spans, spans[1:], strict=False):
            if s1 <= e0:
                errs.append(f"buffer {b}: {o0!r} (live {s0}..{e0}) and {o1!r} (from {s1}) overlap")
    return errs


def verify(g: nx.DiGraph, after: str | None = None) -> nx.DiGraph:
    """Return ``g`` if it is sound, else raise :class:`GraphError` naming the pass ``after``."""
    errs = problems(g)
    if errs:
        where = f"after pass {after!r}" if after else "in the input graph"
        listed = "\n  ".join(errs[:20]) + (f"\n  ... and {len(errs) - 20} more" if len(errs) > 20 else "")
        raise GraphError(f"graph verification failed {where} (network {g.graph.get('name')!r}):\n  {listed}")
    return g
