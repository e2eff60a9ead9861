"""Repeated-structure detection: merges (concat/add with their branches) that repeat with
different widths become one parameterised ``block`` called once per occurrence.

Two merges are the same structure when they agree on everything but the widths (conv
``filters``, fc ``out``): op kinds, kernels, strides, pads, branch layout. Each width position
that varies between occurrences becomes a block parameter (positions that always vary
together share one); positions equal in every occurrence stay literal in the block body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

WIDTH = {"conv": "filters", "fc": "out"}


@dataclass
class Layer:
    node: str


@dataclass
class Merge:
    node: str
    branches: list[list[Layer | Merge]]  # an empty branch is identity


@dataclass
class Block:
    """A block definition: ``name``, ``params``, the body (the first occurrence's tree) and, per body
    width position, the parameter name or None (literal)."""

    name: str
    params: list[str]
    template: Merge
    slots: list[str | None]
    calls: dict[str, list[int]] = field(default_factory=dict)  # merge node -> argument values


@dataclass
class BlockCall:
    block: Block
    merge: Merge


def walk(item: Any) -> list[str]:
    """The nodes of an item tree in emission order (the merge node first, then its branches)."""
    if isinstance(item, Layer):
        return [item.node]
    if isinstance(item, Merge):
        out = [item.node]
        for b in item.branches:
            for it in b:
                out.extend(walk(it))
        return out
    return []


def _signature(g: nx.DiGraph, item: Any) -> Any:
    if isinstance(item, Layer):
        op = g.nodes[item.node]["op"]
        skip = WIDTH.get(op.kind)
        return (op.kind, tuple(sorted((k, repr(v)) for k, v in op.attrs.items() if k != skip)))
    if isinstance(item, Merge):
        return (g.nodes[item.node]["op"].kind, tuple(tuple(_signature(g, i) for i in b) for b in item.branches))
    raise TypeError(f"not an item: {item!r}")


def widths(g: nx.DiGraph, item: Any) -> list[int]:
    """The width of every conv/fc in ``item``, in emission order."""
    out = []
    for n in walk(item):
        op = g.nodes[n]["op"]
        if op.kind in WIDTH:
            out.append(int(op[WIDTH[op.kind]]))
    return out


def find_blocks(g: nx.DiGraph, items: list[Any], min_calls: int = 2) -> list[Any]:
    """``items`` (a top-level sequence) with every merge that occurs ``min_calls`` times or more
    (same structure, any widths) replaced by a :class:`BlockCall` of a shared :class:`Block`."""
    groups: dict[Any, list[Merge]] = {}
    for it in items:
        if isinstance(it, Merge):
            groups.setdefault(_signature(g, it), []).append(it)
    blocks: dict[Any, Block] = {}
    counts: dict[str, int] = {}
    for sig, merges in groups.items():
        if len(merges) < min_calls:
            continue
        table = [widths(g, m) for m in merges]
        columns = list(zip(*table, strict=True)) if table[0] else []
        params: list[str] = []
        by_column: dict[tuple[int, ...], str] = {}
        slots: list[str | None] = []
        for col in columns:
            if len(set(col)) == 1:
                slots.append(None)
            else:
                if col not in by_column:
                    by_column[col] = f"w{len(by_column) + 1}"
                    params.append(by_column[col])
                slots.append(by_column[col])
        kind = g.nodes[merges[0].node]["op"].kind
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}_block" + (str(counts[kind]) if counts[kind] > 1 else "")
        block = Block(name, params, merges[0], slots)
        for m, row in zip(merges, table, strict=True):
            block.calls[m.node] = [row[columns.index(c)] for c in by_column]
        blocks[sig] = block
    out: list[Any] = []
    for it in items:
        if isinstance(it, Merge) and _signature(g, it) in blocks:
            out.append(BlockCall(blocks[_signature(g, it)], it))
        else:
            out.append(it)
    return out
