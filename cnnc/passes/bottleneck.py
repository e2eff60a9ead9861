"""Bottleneck insertion (architecture-changing, opt-in): the lesson of GoogLeNet.

Requires: a source-level graph (no fused or folded layers; its ``g.graph["params"]``, if
recorded, must still be the graph's own parameter list): the pass manager runs it before
every value-preserving pass.
Ensures:

* before each k>1 convolution (``groups=1``) whose input is wide (``min_channels`` or more), a 1x1 conv + ReLU
  ``<conv>_reduce`` / ``<conv>_reduce_relu`` reducing the input to ``width`` channels (or
  ``ratio`` x the input channels, at least 1), inserted only where it is a reduction and the
  branch's MACs (the conv's alone before; the 1x1's plus the conv's after) fall by at least
  ``min_saving`` x. An input already made by a 1x1 conv (through ReLU, batchnorm or dropout)
  counts as reduced and is left alone;
* after each max/avg pool read directly by a concat, a 1x1 projection + ReLU
  ``<pool>_proj`` / ``<pool>_proj_relu`` to the same width (when that is fewer channels than
  the pool has), which the concat reads instead: pooling keeps every channel, so without it
  the concat's depth can only grow (``project_pools=false`` turns this off);
* ``g.graph["params"]`` becomes the new graph's parameter list: the new layers' parameters
  (``<conv>_reduce.weight``, ``<conv>_reduce.bias``, ...) appear in it, in declaration order,
  so ``cnnc.params.init`` and a generated module's ``init_params`` initialise them like every
  other layer (He-normal weights, zero biases); a parameter file of the source network lacks
  them and is rejected with the missing names listed;
* ``g.graph["reports"]["bottleneck"]``: per insertion and in total, MACs and params before
  and after (see :func:`format_report`; the pass manager prints it).

Preserves values: no (it changes the architecture; the new layers need training).
On the naive inception module (28x28x256) with the defaults it builds the dimension-reduced
module: 854,196,224 -> 271,351,808 MACs, output depth 672 -> 480.
"""

from __future__ import annotations

import networkx as nx

from ..cost import op_cost
from ..errors import CnncError
from ..graph import param_specs, totals
from ..ops import make_op
from ..shapes import fmt_shape, infer_shape
from .rewrite import Node, build, consumers, nodes_of, record_report, unique_name

PRESERVES_VALUES = False
OPTIONS: dict[str, tuple[type, object, str]] = {
    "ratio": (float, 0.25, "reduced width = ratio x input channels"),
    "width": (int, 0, "explicit reduced width (0: use ratio)"),
    "min_saving": (float, 2.0, "insert a reduction only where the branch's MACs fall by this factor"),
    "project_pools": (bool, True, "add a 1x1 projection after pools that feed a concat"),
    "min_channels": (int, 16, "an input is wide (worth reducing) from this many channels"),
}

_PASS_THROUGH = ("relu", "batchnorm", "dropout")


def _reduced_width(cin: int, ratio: float, width: int) -> int:
    return width if width > 0 else max(1, int(ratio * cin + 1e-9))


def _already_reduced(g: nx.DiGraph, n: str) -> bool:
    while g.nodes[n]["op"].kind in _PASS_THROUGH:
        n = g.nodes[n]["inputs"][0]
    op = g.nodes[n]["op"]
    return op.kind == "conv" and op["kernel"] == 1


def _check_source_level(g: nx.DiGraph) -> None:
    for n in g.nodes:
        op = g.nodes[n]["op"]
        if op.get("parts") or op.get("act") or op.kind == "slice" or op.get("inplace"):
            raise CnncError(f"bottleneck changes the architecture and needs the source-level graph, but "
                            f"{n!r} was already rewritten by {', '.join(g.graph.get('passes', []))}: "
                            "run bottleneck first")
    if g.graph.get("params") is not None and list(g.graph["params"]) != param_specs(g):
        raise CnncError("bottleneck needs the source-level graph: its parameter list no longer matches")


def _conv_cost(op, in_shape):
    out = infer_shape(op, [in_shape])
    return op_cost(op, [in_shape], out)


def run(g: nx.DiGraph, ratio: float = 0.25, width: int = 0, min_saving: float = 2.0,
        project_pools: bool = True, min_channels: int = 16) -> nx.DiGraph:
    """A copy of ``g`` with 1x1 bottlenecks inserted where the policy says they pay."""
    if not (0 < ratio <= 1) or width < 0 or min_saving <= 0:
        raise CnncError("bottleneck: need 0 < ratio <= 1, width >= 0 and min_saving > 0 "
                        f"(got ratio={ratio}, width={width}, min_saving={min_saving})")
    _check_source_level(g)
    uses = consumers(g)
    taken = set(g.nodes)
    result: list[Node] = []
    projected: dict[str, str] = {}  # pool -> the projection's relu, for the concats reading it
    insertions = []
    for nd in nodes_of(g):
        op = nd.op
        if op.kind == "concat":
            nd.inputs = [projected.get(i, i) for i in nd.inputs]
        if op.kind == "conv" and op["kernel"] > 1 and op["groups"] == 1:
            x = nd.inputs[0]
            cin, h, w_ = g.nodes[x]["shape"]
            w = _reduced_width(cin, ratio, width)
            if min_channels <= cin and w < cin and not _already_reduced(g, x):
                red = make_op("conv", filters=w, kernel=1)
                red_cost = _conv_cost(red, (cin, h, w_))
                new_cost = _conv_cost(op, (w, h, w_))
                before = g.nodes[nd.name]["cost"]
                after_macs = red_cost.macs + new_cost.macs
                if before.macs >= min_saving * after_macs:
                    conv_name = unique_name(taken, f"{nd.name}_reduce")
                    relu_name = unique_name(taken | {conv_name}, f"{conv_name}_relu")
                    taken |= {conv_name, relu_name}
                    result.append(Node(conv_name, red, [x], nd.span, nd.block))
                    result.append(Node(relu_name, make_op("relu"), [conv_name], nd.span, nd.block))
                    nd.inputs = [relu_name]
                    insertions.append({
                        "kind": "reduce", "at": nd.name, "new": [conv_name, relu_name], "in_channels": cin,
                        "width": w, "kernel": op["kernel"], "filters": op["filters"],
                        "macs_before": before.macs, "macs_after": after_macs,
                        "params_before": before.params, "params_after": red_cost.params + new_cost.params,
                    })
        result.append(nd)
        if (project_pools and op.kind in ("maxpool", "avgpool") and nd.name != g.graph["output"]
                and any(g.nodes[u]["op"].kind == "concat" for u in uses[nd.name])):
            cin, h, w_ = g.nodes[nd.name]["shape"]
            w = _reduced_width(cin, ratio, width)
            if w < cin:
                proj = make_op("conv", filters=w, kernel=1)
                cost = _conv_cost(proj, (cin, h, w_))
                conv_name = unique_name(taken, f"{nd.name}_proj")
                relu_name = unique_name(taken | {conv_name}, f"{conv_name}_relu")
                taken |= {conv_name, relu_name}
                result.append(Node(conv_name, proj, [nd.name], nd.span, nd.block))
                result.append(Node(relu_name, make_op("relu"), [conv_name], nd.span, nd.block))
                projected[nd.name] = relu_name
                insertions.append({
                    "kind": "project", "at": nd.name, "new": [conv_name, relu_name], "in_channels": cin,
                    "width": w, "kernel": op["kernel"], "filters": w,
                    "macs_before": 0, "macs_after": cost.macs, "params_before": 0, "params_after": cost.params,
                })
    new = build(g, result)
    new.graph["params"] = param_specs(new)
    t0, t1 = totals(g), totals(new)
    record_report(new, "bottleneck", {
        "options": {"ratio": ratio, "width": width, "min_saving": min_saving, "project_pools": project_pools,
                    "min_channels": min_channels},
        "insertions": insertions,
        "total": {"macs_before": t0.macs, "macs_after": t1.macs, "params_before": t0.params,
                  "params_after": t1.params,
                  "output_before": list(g.nodes[g.graph["output"]]["shape"]),
                  "output_after": list(new.nodes[new.graph["output"]]["shape"])},
    })
    return new


def _ratio(before: int, after: int) -> str:
    if before == 0:
        return "new"
    return f"{before / after:.2f}x fewer" if after and after <= before else f"{after / before:.2f}x more"


def format_report(report: dict) -> str:
    """The report as text, one line per insertion and a total::

        bottleneck: reduce before b2/conv (3x3, 256 -> 192): 1x1 256 -> 64 b2/conv_reduce;
            MACs 346,816,512 -> 99,549,184 (3.48x fewer), params 442,560 -> 127,424
        ...
        bottleneck total: 2 insertions; MACs 854,196,224 -> 271,351,808 (3.15x fewer);
            params 1,038,560 -> 360,416; output 672x28x28 -> 480x28x28
    """
    lines = []
    for ins in report["insertions"]:
        k = ins["kernel"]
        if ins["kind"] == "reduce":
            head = (f"bottleneck: reduce before {ins['at']} ({k}x{k}, {ins['in_channels']} -> {ins['filters']}): "
                    f"1x1 {ins['in_channels']} -> {ins['width']} {ins['new'][0]}")
        else:
            head = (f"bottleneck: project after {ins['at']} ({k}x{k} pool, {ins['in_channels']} channels): "
                    f"1x1 {ins['in_channels']} -> {ins['width']} {ins['new'][0]}")
        lines.append(f"{head}; MACs {ins['macs_before']:,} -> {ins['macs_after']:,} "
                     f"({_ratio(ins['macs_before'], ins['macs_after'])}), "
                     f"params {ins['params_before']:,} -> {ins['params_after']:,}")
    t = report["total"]
    lines.append(f"bottleneck total: {len(report['insertions'])} insertions; "
                 f"MACs {t['macs_before']:,} -> {t['macs_after']:,} ({_ratio(t['macs_before'], t['macs_after'])}); "
                 f"params {t['params_before']:,} -> {t['params_after']:,}; "
                 f"output {fmt_shape(tuple(t['output_before']))} -> {fmt_shape(tuple(t['output_after']))}")
    return "\n".join(lines)
