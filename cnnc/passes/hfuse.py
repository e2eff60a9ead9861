"""Horizontal fusion: sibling convolutions reading the same tensor become one convolution.

Requires: any graph; run after ``fuse_relu`` (siblings must agree on ``act``) and after
``concat_elim`` (see below).
Ensures: convs with the same input, kernel, stride, padding, rounding and ``act``, with
``groups=1``, none of them the output, are replaced by one conv (named after their common
block path, ``<block>/hfuse``) whose ``parts`` list theirs in declaration order; each former
conv becomes a ``slice`` node of the same name (channels ``[start, stop)`` of the fused
output, a view), so their readers are unchanged.
A conv that writes straight into an in-place concat (``concat_elim``) is left out by default:
as a slice of the fused output it would need a copy into the concat's buffer, which is what
concat elimination removed. ``include_concat_inputs=true`` fuses it anyway and clears that
concat's ``inplace``. In GoogLeNet this fuses the 3x3- and 5x5-reduce 1x1 convs of every
inception module (the 1x1 branch writes straight into the concat).
Preserves values: yes.
"""

from __future__ import annotations

from itertools import takewhile

import networkx as nx

from ..ops import Op
from .bn_fold import own_parts
from .rewrite import Node, build, consumers, nodes_of, record_report, unique_name

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {
    "include_concat_inputs": (bool, False, "also fuse convs that write straight into an in-place concat"),
    "min_group": (int, 2, "fuse groups of at least this many convs"),
}


def _key(nd: Node) -> tuple:
    op = nd.op
    return (nd.inputs[0], op["kernel"], op["stride"], op["pad"], op["round"], op.get("act"))


def _common_block(names: list[str]) -> str:
    """The longest common ``a/b/`` path prefix of ``names`` (``""`` when none)."""
    parts = [n.split("/")[:-1] for n in names]
    prefix: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    return "/".join(prefix) + "/" if prefix else ""


def run(g: nx.DiGraph, include_concat_inputs: bool = False, min_group: int = 2) -> nx.DiGraph:
    """A copy of ``g`` with every group of fusable sibling convs fused (report in ``reports.hfuse``)."""
    uses = consumers(g)
    out = g.graph["output"]
    nodes = nodes_of(g)
    by_name = {nd.name: nd for nd in nodes}

    def writes_into_inplace_concat(nd: Node) -> bool:
        u = uses[nd.name]
        return len(u) == 1 and by_name[u[0]].op.kind == "concat" and bool(by_name[u[0]].op.get("inplace"))

    groups: dict[tuple, list[Node]] = {}
    for nd in nodes:
        if nd.op.kind != "conv" or nd.op["groups"] != 1 or nd.name == out or not uses[nd.name]:
            continue
        if nd.op.get("residual"):  # reads a second tensor (fuse_add runs after hfuse in a pipeline anyway)
            continue
        if writes_into_inplace_concat(nd) and not include_concat_inputs:
            continue
        groups.setdefault(_key(nd), []).append(nd)

    fused_at: dict[str, list[Node]] = {}  # first member's name -> the nodes replacing the group
    dropped: set[str] = set()
    taken = set(by_name)
    fusions = []
    for members in groups.values():
        if len(members) < max(2, min_group):
            continue
        names = [m.name for m in members]
        fused_name = unique_name(taken, _common_block(names) + "hfuse")
        taken.add(fused_name)
        parts: list[dict] = []
        slices = []
        start = 0
        for m in members:
            stop = start + m.op["filters"]
            parts.extend(own_parts(m.op, m.name))
            slices.append(Node(m.name, _slice_op(start, stop), [fused_name], m.span, m.block, dict(m.extra)))
            start = stop
            for u in uses[m.name]:  # a concat this conv wrote into now reads a view: it copies again
                if by_name[u].op.kind == "concat" and by_name[u].op.get("inplace"):
                    by_name[u].op = by_name[u].op.replace(inplace=False)
        first = members[0]
        op = first.op.replace(filters=start, bias=any(m.op["bias"] for m in members) or any(
            p["bn"] for p in parts), parts=tuple(parts))
        block = tuple(b[0] for b in takewhile(lambda b: len(set(b)) == 1,
                                              zip(*(m.block for m in members), strict=False)))
        fused = Node(fused_name, op, list(first.inputs), first.span, block, {})
        fused_at[first.name] = [fused, *slices]
        dropped.update(names)
        fusions.append({"node": fused_name, "convs": names, "filters": start})

    result: list[Node] = []
    for nd in nodes:
        if nd.name in fused_at:
            result.extend(fused_at[nd.name])
        elif nd.name not in dropped:
            result.append(nd)
    new = build(g, result)
    record_report(new, "hfuse", {"fusions": fusions})
    return new


def _slice_op(start: int, stop: int) -> Op:
    return Op("slice", {"start": start, "stop": stop})
