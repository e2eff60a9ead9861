"""The network graph: a :class:`networkx.DiGraph` with one node per layer.

Contract (every stage after the front end relies on it):

* ``g.graph``: ``name`` (network name), ``source`` (the path as given, or ``<string>``),
  ``text`` (the source text, for error messages), ``input`` and ``output`` (node names),
  ``passes`` (names of the passes applied, in order), ``claims`` (the ``expect`` statements,
  :class:`cnnc.explain.claims.Claim`, with their source spans; absent for graphs not built from source).
* node data: ``op`` (:class:`~cnnc.ops.Op`), ``inputs`` (ordered list of input node
  names: networkx in-edges have no order and concat needs one), ``shape`` (per image,
  ``(C, H, W)`` or ``(F,)``), ``cost`` (:class:`~cnnc.cost.Cost`), ``span``
  (:class:`~cnnc.errors.Span` or None) and ``block`` (tuple of enclosing block-call names).
* edges ``u -> v`` exist exactly for ``u in v.inputs``; edge data ``shape`` is u's shape.
* Node insertion order is a topological order and the declaration order; parameters are
  named ``<node>.<suffix>`` (``inception_3a/b2/conv2.weight``) and listed in that order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from .cost import Cost, op_cost
from .errors import CnncError, ShapeError, Span
from .ops import Op, make_op, param_shapes
from .shapes import Shape, infer_shape

INPUT = "input"


def new_graph(name: str, input_shape: Shape, source: str = "<string>", text: str | None = None,
              span: Span | None = None) -> nx.DiGraph:
    """An empty network holding only its input node."""
    g = nx.DiGraph(name=name, source=source, text=text, input=INPUT, output=INPUT, passes=[])
    op = Op("input", {"shape": tuple(input_shape)})
    shape = tuple(input_shape)
    g.add_node(INPUT, op=op, inputs=[], shape=shape, cost=op_cost(op, [], shape), span=span, block=())
    return g


def add_node(g: nx.DiGraph, name: str, op: Op, inputs: list[str], span: Span | None = None,
             block: tuple[str, ...] = ()) -> str:
    """Append a node after its inputs, inferring its shape and cost.

    Raises :class:`ShapeError` (carrying ``span`` and the source text) when shapes do not fit.
    """
    if name in g:
        raise CnncError(f"duplicate node name {name!r}", span, g.graph.get("text"))
    ins = [g.nodes[i]["shape"] for i in inputs]
    try:
        shape = infer_shape(op, ins)
    except ShapeError as e:
        raise ShapeError(e.message, span, g.graph.get("text")) from None
    if any(d <= 0 for d in shape):
        raise ShapeError(f"{op.kind} would produce the empty shape {shape}", span, g.graph.get("text"))
    g.add_node(name, op=op, inputs=list(inputs), shape=shape, cost=op_cost(op, ins, shape),
               span=span, block=block)
    for i in inputs:
        g.add_edge(i, name, shape=g.nodes[i]["shape"])
    return name


def ordered(g: nx.DiGraph) -> list[str]:
    """Nodes in a topological order that follows insertion (declaration) order."""
    index = {n: i for i, n in enumerate(g.nodes)}
    return list(nx.lexicographical_topological_sort(g, key=index.__getitem__))


def refresh(g: nx.DiGraph) -> nx.DiGraph:
    """Re-infer every shape and cost in place (after a pass edited ops) and return ``g``."""
    for n in ordered(g):
        d = g.nodes[n]
        if d["op"].kind == "input":
            continue
        ins = [g.nodes[i]["shape"] for i in d["inputs"]]
        d["shape"] = infer_shape(d["op"], ins)
        d["cost"] = op_cost(d["op"], ins, d["shape"])
        for i in d["inputs"]:
            g.edges[i, n]["shape"] = g.nodes[i]["shape"]
    return g


def param_specs(g: nx.DiGraph) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter array as ``(name, shape)``, in declaration order (PyTorch layout)."""
    out = []
    for n in g.nodes:
        d = g.nodes[n]
        ins = [g.nodes[i]["shape"] for i in d["inputs"]]
        for suffix, shape in param_shapes(d["op"], ins[0] if ins else ()):
            out.append((f"{n}.{suffix}", shape))
    return out


def param_owner(g: nx.DiGraph, n: str) -> list[tuple[str, tuple[int, ...]]]:
    """The parameters owned by node ``n`` as ``(suffix, shape)``."""
    d = g.nodes[n]
    ins = [g.nodes[i]["shape"] for i in d["inputs"]]
    return param_shapes(d["op"], ins[0] if ins else ())


def totals(g: nx.DiGraph) -> Cost:
    """The sum of every node's cost, the input's activations included."""
    total = Cost()
    for n in g.nodes:
        total = total + g.nodes[n]["cost"]
    return total


def input_shape(g: nx.DiGraph) -> Shape:
    return g.nodes[g.graph["input"]]["shape"]


def output_shape(g: nx.DiGraph) -> Shape:
    return g.nodes[g.graph["output"]]["shape"]


class GraphBuilder:
    """Build a graph from Python, for tests and tools::

        b = GraphBuilder("tiny", (3, 8, 8))
        x = b.layer("conv", b.input, filters=4, kernel=3, pad=1)
        x = b.layer("relu", x)
        g = b.finish(x)
    """

    def __init__(self, name: str, input_shape: Shape):
        self.g = new_graph(name, input_shape)
        self.input = INPUT
        self._count: dict[str, int] = {}

    def layer(self, kind: str, inputs: str | Iterable[str], name: str | None = None, **attrs: Any) -> str:
        op = make_op(kind, **attrs)
        if name is None:
            self._count[op.kind] = self._count.get(op.kind, 0) + 1
            name = f"{op.kind}{self._count[op.kind]}"
        ins = [inputs] if isinstance(inputs, str) else list(inputs)
        return add_node(self.g, name, op, ins)

    def finish(self, output: str) -> nx.DiGraph:
        self.g.graph["output"] = output
        return self.g
