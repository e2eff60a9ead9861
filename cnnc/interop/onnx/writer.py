"""cnnc graph -> readable ``.cnn`` source, and the parameters renamed for the network it parses to.

Series-parallel graphs (every fork closes at a concat/add of its branches) are written as chains
and ``concat { }`` / ``add { }`` merges; merges that repeat become blocks (:mod:`.blocks`). Any
other DAG is written one labelled layer a line with ``@refs``. Only labels are taken from the
graph, and they are :func:`~.importer.identifier` names already; every number is printed by
cnnc. The source is parsed back with cnnc's own front end, and each parsed layer is matched to
the graph node it was written from by its position in the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from ...errors import CnncError
from ...frontend import parse
from ...graph import INPUT, ordered
from ...ops import KINDS
from ...params import validate
from ...shapes import fmt_shape
from .blocks import Block, BlockCall, Layer, Merge, find_blocks, walk

OWNS_PARAMS = ("conv", "fc", "batchnorm")


class _Unstructured(Exception):
    """The graph is not series-parallel: write it with labels and refs."""


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)  # a non-finite float fails the parse back: refused


def call_text(op: Any, width: str | None = None) -> str:
    """``conv(64, 3, pad=1)``: the op with its first attribute positional and non-defaults by keyword
    (``width`` replaces a conv's filters or an fc's out, for block bodies)."""
    spec = KINDS[op.kind]
    args: list[str] = []
    for i, a in enumerate(spec.attrs):
        v = op.attrs.get(a.name, a.default)
        if op.kind in ("conv", "fc") and i == 0 and width is not None:
            args.append(width)
            continue
        if a.required:
            args.append(_num(v))
        elif a.name == "stride" and op.kind in ("maxpool", "avgpool") and v == op["kernel"]:
            continue
        elif v != a.default:
            args.append(f"{a.name}={_num(v)}")
    return f"{op.kind}({', '.join(args)})" if args else op.kind


class _Text:
    """Lines of source and, per line, the graph nodes written on it in order (keys)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.keys: list[list[Any]] = []
        self.cur: list[str] = []
        self.cur_keys: list[Any] = []
        self.indent = 0

    def tok(self, text: str, key: Any = None) -> None:
        self.cur.append(text)
        if key is not None:
            self.cur_keys.append(key)

    def newline(self) -> None:
        self.lines.append("    " * self.indent + " ".join(self.cur) if self.cur else "")
        self.keys.append(self.cur_keys)
        self.cur, self.cur_keys = [], []

    @property
    def line_no(self) -> int:  # 1-based number of the line being written
        return len(self.lines) + 1


class Writer:
    def __init__(self, g: nx.DiGraph) -> None:
        self.g = g

    # -- structure ---------------------------------------------------------------------------
    def seq(self, cur: str, target: str, region: set[str]) -> list[Any]:
        items: list[Any] = []
        g = self.g
        while cur != target:
            succ = [s for s in g.successors(cur) if s in region]
            if len(succ) == 1 and g.nodes[succ[0]]["inputs"] == [cur]:
                nxt = succ[0]
                items.append(Merge(nxt, [[]]) if KINDS[g.nodes[nxt]["op"].kind].merge else Layer(nxt))
                cur = nxt
                continue
            m = self._ipdom(cur, target, region)
            if m is None or not KINDS[g.nodes[m]["op"].kind].merge:
                raise _Unstructured
            between = (nx.descendants(g, cur) & nx.ancestors(g, m) & region) - {cur, m}
            for n in between:
                if any(i not in between and i != cur for i in g.nodes[n]["inputs"]):
                    raise _Unstructured
                if any(s not in between and s != m for s in g.successors(n)):
                    raise _Unstructured
            branches, used = [], set()
            for i in g.nodes[m]["inputs"]:
                if i == cur:
                    branches.append([])
                    continue
                if i not in between:
                    raise _Unstructured
                part = (nx.ancestors(g, i) & between) | {i}
                if part & used:
                    raise _Unstructured
                used |= part
                branches.append(self.seq(cur, i, part))
            if used != between:
                raise _Unstructured
            items.append(Merge(m, branches))
            cur = m
        return items

    def _ipdom(self, cur: str, target: str, region: set[str]) -> str | None:
        g = self.g
        nodes = ((nx.descendants(g, cur) & region) | {cur, target}) & (nx.ancestors(g, target) | {target})
        sub = g.subgraph(nodes).reverse(copy=True)
        try:
            dom = nx.immediate_dominators(sub, target)
        except nx.NetworkXError:
            return None
        return dom.get(cur)

    # -- text --------------------------------------------------------------------------------
    def label(self, n: str, top: bool) -> str:
        op = self.g.nodes[n]["op"]
        return f"{n}: " if top and (op.kind in OWNS_PARAMS or KINDS[op.kind].merge) else ""

    def emit_items(self, t: _Text, items: list[Any], top: bool, key: Any, widths: dict[str, str] | None = None
                   ) -> None:
        """Write a top-level sequence (one item a line) or a branch (all on the current line)."""
        for it in items:
            if top and t.cur and (not isinstance(it, Layer) or self.label(it.node, top)):
                t.newline()  # a labelled layer, merge or block call starts a line; the rest follow it
            if isinstance(it, Layer):
                op = self.g.nodes[it.node]["op"]
                t.tok(self.label(it.node, top) + call_text(op, (widths or {}).get(it.node)), key(it.node))
            elif isinstance(it, Merge):
                self.emit_merge(t, it, top, key, widths)
            elif isinstance(it, BlockCall):
                b = it.block
                args = ", ".join(str(v) for v in b.calls[it.merge.node])
                t.tok(f"{it.merge.node}: {b.name}" + (f"({args})" if args else ""))
        if top and t.cur:
            t.newline()

    def emit_merge(self, t: _Text, m: Merge, top: bool, key: Any, widths: dict[str, str] | None,
                   label: bool = True) -> None:
        kind = self.g.nodes[m.node]["op"].kind
        t.tok((self.label(m.node, top) if label else "") + kind + " {", key(m.node))
        t.newline()
        t.indent += 1
        for b in m.branches:
            if b:
                self.emit_items(t, b, False, key, widths)
            else:
                t.tok("identity")
            t.newline()
        t.indent -= 1
        t.tok("}")

    def emit_block(self, t: _Text, b: Block) -> list[tuple[int, list[int]]]:
        """The block definition; per line of its body, the template positions written on it."""
        nodes = walk(b.template)
        slot_of = {n: i for i, n in enumerate(nodes)}
        widths: dict[str, str] = {}
        k = 0
        for n in nodes:
            if self.g.nodes[n]["op"].kind in ("conv", "fc"):
                if b.slots[k] is not None:
                    widths[n] = b.slots[k]  # type: ignore[assignment]
                k += 1
        first = t.line_no
        t.tok(f"block {b.name}({', '.join(b.params)}) =")
        self.emit_merge(t, b.template, False, lambda n: slot_of[n], widths, label=False)
        t.newline()
        return [(first + i, keys) for i, keys in enumerate(t.keys[first - 1:])]

    def structured(self, net: str, header: list[str], blocks: bool) -> tuple[str, dict[tuple, list[str]]]:
        g = self.g
        region = set(g.nodes) - {INPUT}
        items = self.seq(INPUT, g.graph["output"], region)
        if blocks:
            items = find_blocks(g, items)
        t = _Text()
        for h in header:
            t.tok(h)
            t.newline()
        t.tok(f"network {net}")
        t.newline()
        t.tok(f"input {fmt_shape(g.nodes[INPUT]['shape'])}")
        t.newline()
        t.newline()
        mapping: dict[tuple, list[str]] = {}
        defined: dict[str, list[tuple[int, list[int]]]] = {}
        for it in items:
            if isinstance(it, BlockCall) and it.block.name not in defined:
                defined[it.block.name] = self.emit_block(t, it.block)
                t.newline()
        start = t.line_no
        self.emit_items(t, items, True, lambda n: n)
        for i, keys in enumerate(t.keys[start - 1:]):
            if keys:
                mapping[((), start + i)] = keys
        for it in items:
            if isinstance(it, BlockCall):
                nodes = walk(it.merge)
                for line, slots in defined[it.block.name]:
                    if slots:
                        mapping[((it.merge.node,), line)] = [nodes[s] for s in slots]
        return "\n".join(t.lines) + "\n", mapping

    def flat(self, net: str, header: list[str]) -> tuple[str, dict[tuple, list[str]]]:
        g = self.g
        t = _Text()
        for h in header + ["# (not series-parallel: every layer labelled, inputs by @reference)"]:
            t.tok(h)
            t.newline()
        t.tok(f"network {net}")
        t.newline()
        t.tok(f"input {fmt_shape(g.nodes[INPUT]['shape'])}")
        t.newline()
        prev = INPUT
        mapping: dict[tuple, list[str]] = {}
        for n in ordered(g):
            d = g.nodes[n]
            if n == INPUT:
                continue
            line = t.line_no
            if KINDS[d["op"].kind].merge:
                t.tok(f"{n}: {d['op'].kind} {{ " + "; ".join(f"@{i}" for i in d["inputs"]) + " }", n)
            else:
                if d["inputs"][0] != prev:
                    t.tok(f"@{d['inputs'][0]}")
                t.tok(f"{n}: {call_text(d['op'])}", n)
            t.newline()
            mapping[((), line)] = [n]
            prev = n
        if prev != g.graph["output"]:
            t.tok(f"output @{g.graph['output']}")
            t.newline()
        return "\n".join(t.lines) + "\n", mapping


def to_cnn(g: nx.DiGraph, params: Mapping[str, np.ndarray], header: list[str] | None = None,
           blocks: bool = True, source: str = "<string>") -> tuple[str, nx.DiGraph, dict[str, np.ndarray]]:
    """``.cnn`` text for ``g``, the graph cnnc builds from that text, and ``params`` renamed for it
    (validated, in its declaration order)."""
    w = Writer(g)
    net = str(g.graph.get("name") or "network")
    head = [f"# {h}" for h in (header or [])]
    try:
        text, mapping = w.structured(net, head, blocks)
    except _Unstructured:
        text, mapping = w.flat(net, head)
    parsed = parse(text, source=source)
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for n in parsed.nodes:
        d = parsed.nodes[n]
        if n == INPUT:
            continue
        groups.setdefault((tuple(d["block"]), d["span"].line), []).append((d["span"].column, n))
    rename: dict[str, str] = {}
    for key, cols in groups.items():
        written = mapping.get(key, [])
        found = [n for _, n in sorted(cols)]
        if len(written) != len(found):
            raise CnncError(f"internal error: the written .cnn does not match the graph at {key}")
        for orig, new in zip(written, found, strict=True):
            if g.nodes[orig]["op"].kind != parsed.nodes[new]["op"].kind:
                raise CnncError(f"internal error: {orig!r} was read back as {new!r}")
            rename[orig] = new
    out: dict[str, np.ndarray] = {}
    for name, a in params.items():
        node, suffix = name.rsplit(".", 1)
        out[f"{rename[node]}.{suffix}"] = a
    return text, parsed, validate(out, parsed)
