"""The geometry of a network picture, computed in Python so that tests can check it.

:func:`layout` turns a graph into a :class:`Layout`: one :class:`Box` per layer (or per block
instance when collapsed), one :class:`Edge` per tensor flowing between boxes, one
:class:`Frame` around every block instance. The SVG template only draws what it is given.

The method is the classic layered drawing (Sugiyama):

1. *Units*: every layer, or with ``collapse`` every top-level block instance as one unit.
2. *Layers*: ``networkx.topological_generations`` of the unit graph (inputs at the top); an
   edge spanning several layers gets a thin placeholder in each layer it crosses, so that it
   never runs through a box.
3. *Order* within a layer: the mean position of the item's parents (so a branch stays below
   the branch it continues), ties broken by declaration order (so branches appear in the
   order they are written: the inception module's 1x1, 3x3, 5x5 and pool branches left to
   right); then members of one block instance are made contiguous.
4. *Positions*: each item wants to sit under the mean of its parents' centres; the closest
   positions keeping the order and the gaps are found by isotonic regression (pool adjacent
   violators), layer by layer from the top. Gaps widen by the frame padding wherever a frame
   boundary falls between two neighbours, and layers move apart where frames open or close.

Every coordinate is rounded to 0.1 px and every choice is ordered by declaration, so the
same graph always gives the same geometry (and the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import networkx as nx

from ..ops import describe
from ..report import BYTES_PER_ELEMENT, human
from ..shapes import fmt_shape

CHAR_W = 6.6  # advance of the 11 px monospace font the template uses
LINE_H = 14.0
PAD_X = 8.0
PAD_Y = 5.0
MIN_W = 64.0
H_SEP = 18.0  # between neighbouring boxes
DUMMY_SEP = 8.0  # beside an edge's placeholder
STEM = 12.0  # vertical run of an edge out of and into a box
LAYER_GAP = 38.0
FRAME_PAD = 8.0
FRAME_TITLE = 14.0
MARGIN = 16.0
HEADER_LINE = 16.0
LEGEND_H = 22.0

#: collapse block instances by default past this many layers (GoogLeNet has 142 at -O0)
COLLAPSE_AT = 60

#: what --color can show: (label, unit, value of one node)
METRICS: dict[str, tuple[str, str, Callable[[nx.DiGraph, str], int]]] = {
    "macs": ("MACs", "MACs", lambda g, n: int(g.nodes[n]["cost"].macs)),
    "params": ("parameters", "params", lambda g, n: int(g.nodes[n]["cost"].params)),
    "memory": ("activation memory", "B", lambda g, n: int(g.nodes[n]["cost"].activations) * BYTES_PER_ELEMENT),
}

#: share of the total (lower bound) -> fill colour, text colour; a yellow-orange-red scale
SCALE: tuple[tuple[float, str, str], ...] = (
    (0.0, "#f7f7f7", "#222222"),
    (1e-12, "#ffffcc", "#222222"),
    (0.01, "#ffeda0", "#222222"),
    (0.02, "#fed976", "#222222"),
    (0.05, "#feb24c", "#222222"),
    (0.10, "#fd8d3c", "#222222"),
    (0.20, "#f03b20", "#ffffff"),
    (0.50, "#bd0026", "#ffffff"),
)

#: diff marks -> outline colour, legend text
MARKS: dict[str, tuple[str, str]] = {
    "inserted": ("#1a9850", "inserted by the passes"),
    "changed": ("#2166ac", "changed (inputs, op or shape)"),
    "removed": ("#7f7f7f", "removed by the passes"),
}


@dataclass(frozen=True)
class Box:
    """One layer (``kind="layer"``) or one collapsed block instance (``kind="block"``)."""

    id: str
    kind: str
    x: float
    y: float
    w: float
    h: float
    lines: tuple[str, ...]
    members: tuple[str, ...]  # the graph nodes this box stands for
    value: int  # the colour metric of the members
    share: float  # value / total
    fill: str
    ink: str
    tooltip: str
    mark: str = ""  # "", or a key of MARKS (diff pictures)

    @property
    def cx(self) -> float:
        return round(self.x + self.w / 2, 1)


@dataclass(frozen=True)
class Edge:
    """A tensor from box ``src`` to box ``dst``: a polyline from ``src``'s bottom to ``dst``'s top."""

    src: str
    dst: str
    label: str  # the shape it carries
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Frame:
    """A labelled rectangle around the boxes of one block instance (``id`` is its path)."""

    id: str
    label: str
    x: float
    y: float
    w: float
    h: float
    depth: int
    members: tuple[str, ...]  # box ids inside (at any depth)


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    cls: str = ""


@dataclass(frozen=True)
class Swatch:
    x: float
    y: float
    fill: str
    stroke: str
    text: str
    dashed: bool = False


_Placed = TypeVar("_Placed", Box, Frame, Text, Swatch)


@dataclass(frozen=True)
class Layout:
    """Everything a picture shows, in absolute pixels (origin top left)."""

    width: float
    height: float
    metric: str
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    frames: tuple[Frame, ...]
    labels: tuple[Text, ...]  # tensor shapes under their producers
    header: tuple[Text, ...]
    legend: tuple[Swatch, ...]
    collapsed: bool
    x: float = 0.0  # left edge (a panel of a diff picture is moved right)
    y: float = 0.0

    def box(self, box_id: str) -> Box:
        for b in self.boxes:
            if b.id == box_id:
                return b
        raise KeyError(box_id)

    def shifted(self, dx: float, dy: float = 0.0) -> Layout:
        """The same picture moved by ``(dx, dy)`` (for side-by-side panels)."""

        def mv(x: float, y: float) -> tuple[float, float]:
            return round(x + dx, 1), round(y + dy, 1)

        def moved(items: tuple[_Placed, ...]) -> tuple[_Placed, ...]:
            return tuple(replace(o, x=round(o.x + dx, 1), y=round(o.y + dy, 1)) for o in items)

        return replace(
            self,
            x=round(self.x + dx, 1),
            y=round(self.y + dy, 1),
            boxes=moved(self.boxes),
            edges=tuple(replace(e, points=tuple(mv(*p) for p in e.points)) for e in self.edges),
            frames=moved(self.frames),
            labels=moved(self.labels),
            header=moved(self.header),
            legend=moved(self.legend),
        )


@dataclass(frozen=True)
class Picture:
    """One or more layouts side by side (``--diff`` draws two)."""

    width: float
    height: float
    panels: tuple[Layout, ...]
    title: str

    @property
    def boxes(self) -> tuple[Box, ...]:
        return tuple(b for p in self.panels for b in p.boxes)


# ---------------------------------------------------------------------------------------------
# units


@dataclass
class _Unit:
    id: str
    kind: str
    members: list[str]
    path: tuple[str, ...]  # enclosing block instances (frames)
    decl: int


@dataclass
class _Item:
    """A unit or an edge placeholder in one layer."""

    key: object  # unit id, or ("dummy", src, dst, rank)
    w: float
    path: tuple[str, ...]
    decl: int  # declaration index of the unit (a placeholder: of the edge's destination)
    sub: int = 0  # placeholder: the edge's index into its destination
    parents: list[_Item] = field(default_factory=list)
    x: float = 0.0
    bary: float = 0.0


def has_blocks(g: nx.DiGraph) -> bool:
    return any(g.nodes[n].get("block") for n in g.nodes)


def instance_path(name: str, block: tuple[str, ...]) -> tuple[str, ...]:
    """The block instances enclosing node ``name``, outermost first, each named by its full path.

    ``block`` holds the instances' own names, which need not be unique (two unlabelled calls in
    different branches are both ``layer1``); the node's name holds the path to each
    (``a/b2/layer1/conv1``), so ``("a/b2/layer1",)`` tells that instance from ``b/b2/layer1``.
    """
    parts = name.split("/")
    out: list[str] = []
    start = 0
    for b in block:
        try:
            k = parts.index(b, start)
        except ValueError:  # a name that does not spell its path (a pass-made node): nest by block names
            out.append("/".join([*out[-1:], b]) if out else b)
            continue
        out.append("/".join(parts[:k + 1]))
        start = k + 1
    return tuple(out)


def _units(g: nx.DiGraph, collapse: bool) -> tuple[list[_Unit], dict[str, str]]:
    """The units to draw and the unit of every node."""
    units: dict[str, _Unit] = {}
    of: dict[str, str] = {}
    layer_names = {n for n in g.nodes if not g.nodes[n].get("block")} if collapse else set(g.nodes)
    for i, n in enumerate(g.nodes):
        block = instance_path(n, tuple(g.nodes[n].get("block", ())))
        if collapse and block:
            uid = block[0] if block[0] not in layer_names else f"{block[0]} (block)"
            if uid not in units:
                units[uid] = _Unit(uid, "block", [], (), i)
            units[uid].members.append(n)
        else:
            uid = n
            units[uid] = _Unit(uid, "layer", [n], block, i)
        of[n] = uid
    return list(units.values()), of


def _unit_graph(g: nx.DiGraph, units: list[_Unit], of: dict[str, str]
                ) -> tuple[nx.DiGraph, dict[tuple[str, str], list[str]]]:
    ug = nx.DiGraph()
    ug.add_nodes_from(u.id for u in units)
    shapes: dict[tuple[str, str], list[str]] = {}
    for n in g.nodes:
        for i in g.nodes[n]["inputs"]:
            a, b = of[i], of[n]
            if a == b:
                continue
            ug.add_edge(a, b)
            s = fmt_shape(g.nodes[i]["shape"])
            lst = shapes.setdefault((a, b), [])
            if s not in lst:
                lst.append(s)
    return ug, shapes


# ---------------------------------------------------------------------------------------------
# text of a box


def _pct(share: float) -> str:
    if share <= 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{100 * share:.1f}%"


def _metric_line(value: int, share: float, metric: str) -> str:
    unit = METRICS[metric][1]
    if not value:
        return f"no {unit}" if metric != "memory" else "in place"
    text = human(value, "B") if metric == "memory" else f"{human(value)} {unit}"
    return f"{text}  {_pct(share)}"


def op_text(g: nx.DiGraph, n: str) -> str:
    op = g.nodes[n]["op"]
    if op.kind == "input":
        return "input"
    text = describe(op)
    if op.kind == "concat" and op.get("inplace"):
        text += " (in place)"
    return text


def _tooltip(g: nx.DiGraph, members: list[str]) -> str:
    lines = []
    for n in members:
        d = g.nodes[n]
        c = d["cost"]
        op = d["op"]
        extra = ""
        if op.get("parts"):
            extra = " = " + " + ".join(p["node"] for p in op["parts"])
        lines.append(f"{n}: {op_text(g, n)}{extra}, output {fmt_shape(d['shape'])}, {c.params:,} params, "
                     f"{c.macs:,} MACs, {c.activations * BYTES_PER_ELEMENT:,} B")
    return "\n".join(lines)


def _colour(share: float) -> tuple[str, str]:
    fill, ink = SCALE[0][1], SCALE[0][2]
    for lo, f, i in SCALE:
        if share >= lo:
            fill, ink = f, i
    return fill, ink


# ---------------------------------------------------------------------------------------------
# ordering and positions


def _contiguous(items: list[_Item], depth: int = 0) -> list[_Item]:
    """``items`` (sorted) regrouped so that the members of one block instance are adjacent;
    groups keep the order of their mean position."""
    groups: dict[object, list[_Item]] = {}
    for it in items:
        k = it.path[depth] if len(it.path) > depth else ("", id(it))
        groups.setdefault(k, []).append(it)
    ordered_groups = sorted(groups.items(), key=lambda kv: (sum(i.bary for i in kv[1]) / len(kv[1]),
                                                            kv[1][0].decl, kv[1][0].sub))
    out: list[_Item] = []
    for k, members in ordered_groups:
        out.extend(_contiguous(members, depth + 1) if isinstance(k, str) else members)
    return out


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _gap(a: _Item, b: _Item) -> float:
    dummy = isinstance(a.key, tuple) or isinstance(b.key, tuple)
    frames = len(a.path) + len(b.path) - 2 * _common(a.path, b.path)
    return (DUMMY_SEP if dummy else H_SEP) + FRAME_PAD * frames


def _place(items: list[_Item], want: list[float]) -> None:
    """Centres as close as possible (least squares) to ``want``, keeping order and gaps:
    isotonic regression by pool adjacent violators on ``want - minimal offsets``."""
    off = [0.0]
    for a, b in zip(items, items[1:], strict=False):
        off.append(off[-1] + (a.w + b.w) / 2 + _gap(a, b))
    target = [w - o for w, o in zip(want, off, strict=True)]
    blocks: list[list[float]] = []  # [sum, count]
    for t in target:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    z: list[float] = []
    for s, c in blocks:
        z.extend([s / c] * int(c))
    for it, zi, o in zip(items, z, off, strict=True):
        it.x = zi + o


# ---------------------------------------------------------------------------------------------


def layout(g: nx.DiGraph, metric: str = "macs", collapse: bool | None = None,
           marks: dict[str, str] | None = None, title: str | None = None, of_total: int | None = None) -> Layout:
    """The geometry of ``g``'s picture.

    ``metric`` colours the boxes by their share of the network's MACs, parameters or activation
    memory; ``collapse`` draws each top-level block instance as one box (None: past
    :data:`COLLAPSE_AT` layers when the network has blocks); ``marks`` maps node names to a
    :data:`MARKS` key (diff pictures); ``title`` replaces the first header line; ``of_total``
    replaces the network's own total as the 100% of the colours (a diff colours both panels by the
    larger total, so that the same colour means the same cost on either side).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    if collapse is None:
        collapse = g.number_of_nodes() > COLLAPSE_AT and has_blocks(g)
    marks = marks or {}
    units, of = _units(g, collapse)
    ug, shapes = _unit_graph(g, units, of)
    if collapse and not nx.is_directed_acyclic_graph(ug):  # a block whose layers interleave others
        return layout(g, metric, False, marks, title, of_total)
    value_of = METRICS[metric][2]
    own_total = sum(value_of(g, n) for n in g.nodes)
    total = own_total if of_total is None else of_total
    by_id = {u.id: u for u in units}
    texts, vals = _box_texts(g, units, metric, total)
    widths = {uid: max(MIN_W, round(max(len(t) for t in lines) * CHAR_W + 2 * PAD_X, 1))
              for uid, lines in texts.items()}
    heights = {uid: round(len(lines) * LINE_H + 2 * PAD_Y, 1) for uid, lines in texts.items()}

    # 1. layers, with a placeholder wherever an edge crosses one
    rank: dict[str, int] = {uid: r for r, gen in enumerate(nx.topological_generations(ug)) for uid in gen}
    n_ranks = max(rank.values()) + 1
    layers: list[list[_Item]] = [[] for _ in range(n_ranks)]
    item_of: dict[str, _Item] = {}
    for u in units:  # units are in declaration order
        item_of[u.id] = _Item(u.id, widths[u.id], u.path, u.decl)
        layers[rank[u.id]].append(item_of[u.id])
    in_order = _inputs_in_order(g, units, of)
    frame_ranks: dict[tuple[str, ...], list[int]] = {}  # the layers each block instance spans
    for u in units:
        for d in range(1, len(u.path) + 1):
            frame_ranks.setdefault(u.path[:d], []).append(rank[u.id])
    span = {p: (min(rs), max(rs)) for p, rs in frame_ranks.items()}
    chains: dict[tuple[str, str], list[_Item]] = {}
    for dst, srcs in in_order.items():
        for k, src in enumerate(srcs):
            prev = item_of[src]
            chain = []
            for r in range(rank[src] + 1, rank[dst]):
                prev = _Item(("dummy", src, dst, r), 0.0, _lane_path(by_id[src].path, by_id[dst].path, r, span),
                             by_id[dst].decl, k, [prev])
                layers[r].append(prev)
                chain.append(prev)
            item_of[dst].parents.append(prev)
            chains[(src, dst)] = chain

    # 2. order and x, layer by layer from the top
    for r, items in enumerate(layers):
        if r == 0:
            items.sort(key=lambda it: (it.decl, it.sub))
            for i, it in enumerate(items):
                it.bary = float(i)
        else:
            pos = {id(it): i for i, it in enumerate(layers[r - 1])}
            for it in items:
                it.bary = sum(pos[id(p)] for p in it.parents) / len(it.parents) if it.parents else 0.0
            items.sort(key=lambda it: (it.bary, it.decl, it.sub))
        items[:] = _contiguous(items)
        _place(items, [sum(p.x for p in it.parents) / len(it.parents) if it.parents else 0.0 for it in items])

    # 3. header, legend and y of every layer (more room where frames open or close)
    header_lines = _header(g, metric, total, title, of_total is not None and of_total != own_total)
    header = [Text(MARGIN, round(MARGIN + HEADER_LINE * (i + 0.75), 1), t, "title" if i == 0 else "info")
              for i, t in enumerate(header_lines)]
    legend, legend_right = _legend(MARGIN, MARGIN + HEADER_LINE * len(header_lines) + 4,
                                   {m for m in marks.values() if m})
    header_right = max(MARGIN + len(t.text) * CHAR_W * (1.2 if t.cls == "title" else 1.0) for t in header)
    opens, closes = [0] * n_ranks, [0] * n_ranks
    for u in units:
        r = rank[u.id]
        opens[r] = max(opens[r], sum(1 for d in range(1, len(u.path) + 1) if span[u.path[:d]][0] == r))
        closes[r] = max(closes[r], sum(1 for d in range(1, len(u.path) + 1) if span[u.path[:d]][1] == r))
    band_h = [max([heights[it.key] for it in items if isinstance(it.key, str)] or [0.0]) for items in layers]
    tops = []
    y = MARGIN + HEADER_LINE * len(header_lines) + LEGEND_H + 8 + opens[0] * (FRAME_PAD + FRAME_TITLE)
    for r in range(n_ranks):
        tops.append(y)
        if r + 1 < n_ranks:
            y += band_h[r] + LAYER_GAP + closes[r] * FRAME_PAD + opens[r + 1] * (FRAME_PAD + FRAME_TITLE)
    bottom = y + band_h[-1] + closes[-1] * FRAME_PAD

    # 4. absolute positions: the graph centred under the header when narrower
    left = min(it.x - it.w / 2 for items in layers for it in items)
    right = max(it.x + it.w / 2 for items in layers for it in items)
    depth = max((len(u.path) for u in units), default=0)
    graph_w = right - left + 2 * depth * FRAME_PAD + 2 * MARGIN
    text_w = max(header_right, legend_right) + MARGIN
    dx = MARGIN + depth * FRAME_PAD - left + max(0.0, (text_w - graph_w) / 2)
    boxes: dict[str, Box] = {}
    for u in units:
        it = item_of[u.id]
        share = vals[u.id] / total if total else 0.0
        fill, ink = _colour(share)
        mark = next((m for m in ("inserted", "changed", "removed") if any(marks.get(n) == m for n in u.members)), "")
        boxes[u.id] = Box(u.id, u.kind, round(it.x - it.w / 2 + dx, 1), round(tops[rank[u.id]], 1), it.w,
                          band_h[rank[u.id]], texts[u.id], tuple(u.members), vals[u.id], share, fill, ink,
                          _tooltip(g, u.members), mark)
    edges: list[Edge] = []
    for dst, srcs in in_order.items():
        b = boxes[dst]
        for k, src in enumerate(srcs):
            a = boxes[src]
            pts = [(a.cx, round(a.y + a.h, 1)), (a.cx, round(a.y + a.h + STEM, 1))]
            for d in chains[(src, dst)]:
                r, x = d.key[3], round(d.x + dx, 1)  # type: ignore[index]
                pts += [(x, round(tops[r] - STEM, 1)), (x, round(tops[r] + band_h[r] + STEM, 1))]
            ex = round(b.x + b.w * (k + 1) / (len(srcs) + 1), 1)  # inputs spread in their order
            pts += [(ex, round(b.y - STEM, 1)), (ex, b.y)]
            edges.append(Edge(src, dst, ", ".join(shapes[(src, dst)]), tuple(pts)))
    lanes = [(it.path, round(it.x + dx, 1)) for items in layers for it in items if isinstance(it.key, tuple)]
    width = round(max(right + dx + depth * FRAME_PAD + MARGIN, text_w), 1)
    return Layout(width, round(bottom + MARGIN, 1), metric, tuple(boxes.values()), tuple(edges),
                  tuple(_frames(boxes, units, lanes)), tuple(_shape_labels(edges, boxes)), tuple(header),
                  tuple(legend), collapse)


def _box_texts(g: nx.DiGraph, units: list[_Unit], metric: str, total: int
               ) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """The lines of every box and the value of ``metric`` it stands for."""
    value_of = METRICS[metric][2]
    texts: dict[str, tuple[str, ...]] = {}
    vals: dict[str, int] = {}
    for u in units:
        v = sum(value_of(g, n) for n in u.members)
        vals[u.id] = v
        share = v / total if total else 0.0
        if u.kind == "layer":
            n = u.members[0]
            texts[u.id] = (n, op_text(g, n), fmt_shape(g.nodes[n]["shape"]), _metric_line(v, share, metric))
            continue
        convs = sum(1 for n in u.members if g.nodes[n]["op"].kind in ("conv", "fc"))
        lines = [u.id, f"block: {len(u.members)} layers, {convs} conv/fc", fmt_shape(g.nodes[u.members[-1]]["shape"]),
                 _metric_line(v, share, metric)]
        top = max(u.members, key=lambda n: value_of(g, n))  # the first of the costliest
        if value_of(g, top) and total:
            short = top[len(u.id) + 1:] if top.startswith(u.id + "/") else top
            lines.append(f"max: {short} ({op_text(g, top)}) {_pct(value_of(g, top) / total)}")
        texts[u.id] = tuple(lines)
    return texts, vals


def _inputs_in_order(g: nx.DiGraph, units: list[_Unit], of: dict[str, str]) -> dict[str, list[str]]:
    """For every unit (declaration order), the units it reads, in the order its layers read them."""
    out: dict[str, list[str]] = {}
    for u in units:
        srcs = out.setdefault(u.id, [])
        for n in u.members:
            for i in g.nodes[n]["inputs"]:
                if of[i] != u.id and of[i] not in srcs:
                    srcs.append(of[i])
    return out


def _lane_path(a: tuple[str, ...], b: tuple[str, ...], r: int, span: dict[tuple[str, ...], tuple[int, int]]
               ) -> tuple[str, ...]:
    """The frames a long edge's placeholder in layer ``r`` lies in: those of either end that span
    ``r`` (a residual shortcut runs inside its block's frame, never across its border)."""
    best: tuple[str, ...] = ()
    for path in (a, b):
        d = 0
        while d < len(path) and span[path[:d + 1]][0] <= r <= span[path[:d + 1]][1]:
            d += 1
        if d > len(best):
            best = path[:d]
    return best


def _shape_labels(edges: list[Edge], boxes: dict[str, Box]) -> list[Text]:
    """The shape of each tensor once, beside the stem of the edges leaving its producer."""
    seen: dict[str, list[str]] = {}
    for e in edges:
        lst = seen.setdefault(e.src, [])
        if e.label not in lst:
            lst.append(e.label)
    order = {b: i for i, b in enumerate(boxes)}
    out = []
    for src in sorted(seen, key=order.__getitem__):
        a = boxes[src]
        out.append(Text(round(a.cx + 4, 1), round(a.y + a.h + 10, 1), ", ".join(seen[src]), "shape"))
    return out


def _frames(boxes: dict[str, Box], units: list[_Unit], lanes: list[tuple[tuple[str, ...], float]]) -> list[Frame]:
    """A rectangle around each block instance's boxes, inner frames and edge placeholders (``lanes``)."""
    inside: dict[tuple[str, ...], list[str]] = {}
    for u in units:
        for d in range(1, len(u.path) + 1):
            inside.setdefault(u.path[:d], []).append(u.id)
    rects: dict[tuple[str, ...], tuple[float, float, float, float]] = {}
    for path in sorted(inside, key=lambda p: -len(p)):  # innermost first
        xs0 = [boxes[b].x for b in inside[path]]
        ys0 = [boxes[b].y for b in inside[path]]
        xs1 = [boxes[b].x + boxes[b].w for b in inside[path]]
        ys1 = [boxes[b].y + boxes[b].h for b in inside[path]]
        lane_x = [x for p, x in lanes if p[:len(path)] == path]
        xs0 += [x - DUMMY_SEP / 2 for x in lane_x]
        xs1 += [x + DUMMY_SEP / 2 for x in lane_x]
        for sub, (x0, y0, x1, y1) in rects.items():
            if len(sub) > len(path) and sub[:len(path)] == path:
                xs0.append(x0)
                ys0.append(y0)
                xs1.append(x1)
                ys1.append(y1)
        rects[path] = (min(xs0) - FRAME_PAD, min(ys0) - FRAME_PAD - FRAME_TITLE, max(xs1) + FRAME_PAD,
                       max(ys1) + FRAME_PAD)
    first = {}
    for u in units:
        for d in range(1, len(u.path) + 1):
            first.setdefault(u.path[:d], u.decl)
    out = []
    for path in sorted(rects, key=lambda p: (first[p], len(p))):
        x0, y0, x1, y1 = rects[path]
        out.append(Frame(path[-1], path[-1], round(x0, 1), round(y0, 1), round(x1 - x0, 1),
                         round(y1 - y0, 1), len(path), tuple(inside[path])))
    return out


def _header(g: nx.DiGraph, metric: str, total: int, title: str | None, shared: bool) -> list[str]:
    from ..graph import totals

    t = totals(g)
    passes = ", ".join(g.graph.get("passes") or []) or "none"
    first = title or f"{g.graph['name']}"
    shape_in = fmt_shape(g.nodes[g.graph["input"]]["shape"])
    shape_out = fmt_shape(g.nodes[g.graph["output"]]["shape"])
    return [
        first,
        f"{g.graph['source']}: {shape_in} -> {shape_out}; passes: {passes}",
        f"{t.params:,} params, {t.macs:,} MACs, {t.activations * BYTES_PER_ELEMENT:,} B of activations "
        f"per image",
        f"colour: share of {METRICS[metric][0]} ({_total_text(metric, total)}"
        + (", the larger network's total)" if shared else " in all)"),
    ]


def _total_text(metric: str, total: int) -> str:
    return human(total, "B") if metric == "memory" else f"{human(total)} {METRICS[metric][1]}"


def _legend(x: float, y: float, marks: set[str]) -> tuple[list[Swatch], float]:
    out = []
    bounds = [lo for lo, _, _ in SCALE] + [1.0]
    for i, (lo, fill, _ink) in enumerate(SCALE):
        hi = bounds[i + 1]
        if lo == 0.0:
            text = "none"
        elif lo < 1e-9:
            text = f"<{_pct(hi)}"
        elif hi >= 1.0:
            text = f">={_pct(lo)}"
        else:
            text = f"{_pct(lo)}-{_pct(hi)}"
        out.append(Swatch(round(x, 1), round(y, 1), fill, "#555555", text))
        x += 18 + len(text) * CHAR_W + 12
    for m in ("inserted", "changed", "removed"):
        if m in marks:
            colour, text = MARKS[m]
            out.append(Swatch(round(x, 1), round(y, 1), "#ffffff", colour, text, m == "removed"))
            x += 18 + len(text) * CHAR_W + 12
    return out, x


def picture(g: nx.DiGraph, metric: str = "macs", collapse: bool | None = None) -> Picture:
    """The picture of one graph."""
    lay = layout(g, metric, collapse)
    return Picture(lay.width, lay.height, (lay,), str(g.graph["name"]))


def diff_marks(before: nx.DiGraph, after: nx.DiGraph) -> tuple[dict[str, str], dict[str, str]]:
    """Marks for the two panels of a diff: nodes removed (before), inserted or changed (after)."""
    old: dict[str, str] = {}
    new: dict[str, str] = {}
    for n in before.nodes:
        if n not in after:
            old[n] = "removed"
    for n in after.nodes:
        if n not in before:
            new[n] = "inserted"
            continue
        a, b = before.nodes[n], after.nodes[n]
        if a["op"] != b["op"] or list(a["inputs"]) != list(b["inputs"]) or a["shape"] != b["shape"]:
            new[n] = "changed"
            old[n] = "changed"
    return old, new


PANEL_GAP = 40.0


def diff_picture(before: nx.DiGraph, after: nx.DiGraph, metric: str = "macs", collapse: bool | None = None
                 ) -> Picture:
    """``before`` and ``after`` side by side, each with its MACs, changes outlined."""
    if collapse is None:
        collapse = max(before.number_of_nodes(), after.number_of_nodes()) > COLLAPSE_AT and has_blocks(after)
    old, new = diff_marks(before, after)
    mb = sum(int(before.nodes[n]["cost"].macs) for n in before.nodes)
    ma = sum(int(after.nodes[n]["cost"].macs) for n in after.nodes)
    passes = ", ".join(after.graph.get("passes") or []) or "none"
    ratio = f" ({mb / ma:.2f}x fewer)" if ma and ma < mb else (f" ({ma / mb:.2f}x more)" if mb and ma > mb else "")
    value_of = METRICS[metric][2]
    scale = max(sum(value_of(before, n) for n in before.nodes), sum(value_of(after, n) for n in after.nodes))
    left = layout(before, metric, collapse, old, f"before: {before.graph['name']}, {mb:,} MACs", scale)
    right = layout(after, metric, collapse, new, f"after {passes}: {ma:,} MACs{ratio}", scale)
    right = right.shifted(round(left.width + PANEL_GAP, 1))
    return Picture(round(left.width + PANEL_GAP + right.width, 1), max(left.height, right.height), (left, right),
                   f"{before.graph['name']}: before and after {passes}")
