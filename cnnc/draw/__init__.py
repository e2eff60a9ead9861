"""Pictures of a network drawn by cnnc itself: SVG and self-contained HTML.

networkx lays the graph out in layers (:mod:`cnnc.draw.layout`, geometry in Python that tests
check), Jinja templates write the SVG and the HTML (:mod:`cnnc.draw.render`). No Graphviz, no
browser; the SVG has no script, the HTML page only a few lines that sort its tables.

* :func:`graph_svg` / :func:`graph_html`: ``cnnc inspect --format svg|html``;
* :func:`diff_svg` / :func:`diff_html`: ``--diff``, the graph before and after the passes;
* :mod:`cnnc.draw.bench_report`: ``cnnc bench --per-layer --report``.
"""

from __future__ import annotations

import networkx as nx

from ..graph import totals
from ..report import BYTES_PER_ELEMENT, layer_rows
from ..shapes import fmt_shape
from .layout import COLLAPSE_AT, METRICS, Layout, Picture, diff_picture, layout, op_text, picture
from .render import Cell, Table, num, page, svg, txt

__all__ = ["COLLAPSE_AT", "METRICS", "Layout", "Picture", "diff_html", "diff_picture", "diff_svg", "graph_html",
           "graph_svg", "layout", "picture", "svg"]


def graph_svg(g: nx.DiGraph, metric: str = "macs", collapse: bool | None = None) -> str:
    """The SVG picture of ``g`` (see :func:`cnnc.draw.layout.layout` for the options)."""
    return svg(picture(g, metric, collapse))


def diff_svg(before: nx.DiGraph, after: nx.DiGraph, metric: str = "macs", collapse: bool | None = None) -> str:
    """``before`` and ``after`` the passes side by side, with their MACs; changed layers outlined."""
    return svg(diff_picture(before, after, metric, collapse))


#: the JSON report's per-layer counts, in its order, with their headings
COUNTS = (("weights", "weights"), ("biases", "biases"), ("params", "params"), ("macs", "MACs"),
          ("other_ops", "other ops"), ("activations", "activations"))


def layer_table(g: nx.DiGraph, metric: str) -> Table:
    """Every layer but the input, as in ``--format json``, with the share of ``metric``."""
    value_of = METRICS[metric][2]
    total = sum(value_of(g, n) for n in g.nodes)
    rows = []
    for i, r in enumerate(layer_rows(g)):
        share = value_of(g, r["name"]) / total if total else 0.0
        rows.append([num(i + 1), txt(r["name"]), txt(op_text(g, r["name"])), txt(", ".join(r["inputs"])),
                     Cell(fmt_shape(tuple(r["shape"])), _elements(r["shape"]), True),
                     *(num(int(r[k])) for k, _ in COUNTS), num(share, f"{100 * share:.2f}%")])
    t = totals(g).as_dict()
    foot = [txt(""), txt("total"), txt(""), txt(""), txt(""), *(num(int(t[k])) for k, _ in COUNTS), txt("")]
    columns = [("#", True), ("layer", False), ("op", False), ("inputs", False), ("output", True),
               *((h, True) for _, h in COUNTS), (f"share of {METRICS[metric][0]}", True)]
    return Table("Layers (click a heading to sort; totals include the input's activations)", columns, rows, foot)


def _elements(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _totals_table(graphs: list[tuple[str, nx.DiGraph]]) -> Table:
    rows = []
    for key, head in COUNTS:
        rows.append([txt(head), *(num(int(totals(g).as_dict()[key])) for _, g in graphs)])
    for key, head in (("before", "peak activation memory without the plan (values)"),
                      ("after", "peak activation memory with the plan (values)")):
        if any(g.graph.get("memory") for _, g in graphs):
            rows.append([txt(head), *(num(int(g.graph["memory"][key])) if g.graph.get("memory") else txt("")
                                      for _, g in graphs)])
    return Table("Totals (one image; activations include the input)", [("", False), *((h, True) for h, _ in graphs)],
                 rows, sortable=False)


def _info(g: nx.DiGraph) -> list[str]:
    t = totals(g)
    passes = ", ".join(g.graph.get("passes") or []) or "none"
    return [f"source {g.graph['source']}; input {fmt_shape(g.nodes[g.graph['input']]['shape'])}, output "
            f"{fmt_shape(g.nodes[g.graph['output']]['shape'])}; passes: {passes}",
            f"{t.params:,} parameters, {t.macs:,} MACs (= {2 * t.macs:,} FLOPs), "
            f"{t.activations * BYTES_PER_ELEMENT:,} bytes of activations per image in float32"]


def pass_report(g: nx.DiGraph) -> list[str]:
    """What each pass that made ``g`` reported (bottleneck insertions, fusions, memory plan)."""
    from ..passes.manager import report_lines

    out: list[str] = []
    for name in g.graph.get("passes") or []:
        try:
            lines = report_lines(g, name)
        except KeyError:  # a report a later pass did not carry over
            lines = []
        out += lines or [f"{name}: applied"]
    return out


def graph_html(g: nx.DiGraph, metric: str = "macs", collapse: bool | None = None) -> str:
    """One self-contained page: the picture, the totals, the sortable per-layer table, the pass report."""
    return page(f"{g.graph['name']}: network picture and costs", _info(g), svg(picture(g, metric, collapse), False),
                [_totals_table([(str(g.graph["name"]), g)]), layer_table(g, metric)], pass_report(g))


def diff_html(before: nx.DiGraph, after: nx.DiGraph, metric: str = "macs", collapse: bool | None = None) -> str:
    """The diff picture, the totals before and after, the per-layer table after, the pass report."""
    return page(f"{after.graph['name']}: before and after {', '.join(after.graph.get('passes') or [])}",
                _info(after), svg(diff_picture(before, after, metric, collapse), False),
                [_totals_table([("before", before), ("after", after)]), layer_table(after, metric)],
                pass_report(after))
