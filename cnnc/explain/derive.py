"""Derivations: for each layer the lecture's formulas with the numbers filled in.

:func:`derive` returns one :class:`Derivation` per layer (declaration order): the output size
per spatial axis ``(W - F + 2P)/S + 1`` with the rounding used, the parameters
``(F*F*C_in/groups)*K + K`` (``0`` for pools, with the reason), MACs and activation memory as
products, the receptive field on the input, and for a merge the channels of each branch. Every
number comes from the graph's own shapes and costs (:mod:`cnnc.cost`), so a derivation and
``cnnc inspect`` cannot disagree; the conv and fc formulas are asserted against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import prod
from typing import Any

import networkx as nx

from ..ops import describe
from ..report import BYTES_PER_ELEMENT, human
from .receptive import Field, receptive_fields

AXES = ("height", "width")
REASONS = {
    "maxpool": "pooling has no parameters: a fixed max over each window",
    "avgpool": "pooling has no parameters: a fixed average over each window",
    "gap": "global pooling has no parameters: a fixed average over each map",
    "lrn": "LRN has no trained parameters: size, alpha, beta and k are constants",
    "relu": "max(0, x) has no parameters",
    "dropout": "dropout has no parameters (the identity at inference)",
    "softmax": "softmax has no parameters",
    "flatten": "a view of its input, no parameters",
    "concat": "a merge has no parameters",
    "add": "a merge has no parameters",
    "input": "the input",
}


@dataclass
class Size:
    """One spatial axis of a window op: ``(n - f + 2p)/s + 1``."""

    axis: str
    n: int
    kernel: int
    pad: int
    stride: int
    rounding: str
    result: int

    @property
    def exact(self) -> Fraction:
        return Fraction(self.n - self.kernel + 2 * self.pad, self.stride) + 1

    @property
    def fits(self) -> bool:
        return self.exact.denominator == 1

    def formula(self) -> str:
        e = self.exact
        shown = str(e.numerator) if e.denominator == 1 else f"{float(e):.2f}"
        text = f"({self.n} - {self.kernel} + 2*{self.pad})/{self.stride} + 1 = {shown}"
        if self.fits:
            return text + (" (round=strict: the stride fits)" if self.rounding == "strict" else "")
        rule = {"floor": "floor", "ceil": "ceil (Caffe's rule)", "strict": "strict"}[self.rounding]
        text += f" -> {rule} -> {self.result}"
        natural = -(-e.numerator // e.denominator) if self.rounding == "ceil" else e.numerator // e.denominator
        if self.rounding == "ceil" and self.result != natural:
            text += " (the last window would start outside the input: dropped)"
        if self.rounding == "floor":
            missed = self.n + 2 * self.pad - ((self.result - 1) * self.stride + self.kernel)
            padded = f"{self.n + 2 * self.pad} (padded)" if self.pad else f"{self.n}"
            text += f"; the stride does not fit: the last {missed} of {padded} cells never read, and " \
                    "round=strict would refuse"
        return text

    def as_dict(self) -> dict[str, Any]:
        e = self.exact
        return {"axis": self.axis, "n": self.n, "kernel": self.kernel, "pad": self.pad, "stride": self.stride,
                "exact": [e.numerator, e.denominator], "fits": self.fits, "rounding": self.rounding,
                "result": self.result, "formula": self.formula()}


@dataclass
class Derivation:
    """The worked arithmetic of one layer."""

    name: str
    op: str
    summary: str
    inputs: list[str]
    in_shape: tuple[int, ...]
    shape: tuple[int, ...]
    sizes: list[Size] = field(default_factory=list)
    weights: int = 0
    biases: int = 0
    params_formula: str = ""
    macs: int = 0
    macs_formula: str = ""
    memory: int = 0
    memory_formula: str = ""
    rf: Field | None = None
    branches: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    merge_formula: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "op": self.op, "summary": self.summary, "inputs": list(self.inputs),
            "input_shape": list(self.in_shape), "shape": list(self.shape),
            "output_size": [s.as_dict() for s in self.sizes],
            "params": {"weights": self.weights, "biases": self.biases, "total": self.weights + self.biases,
                       "formula": self.params_formula},
            "macs": {"value": self.macs, "formula": self.macs_formula},
            "memory": {"values": self.memory, "bytes": self.memory * BYTES_PER_ELEMENT,
                       "formula": self.memory_formula},
            "receptive_field": self.rf.as_dict() if self.rf else None,
            **({"merge": {"branches": [{"from": n, "shape": list(s), "channels": s[0]} for n, s in self.branches],
                          "formula": self.merge_formula}} if self.branches else {}),
        }

    def text(self) -> str:
        def fmt(shape: tuple[int, ...]) -> str:
            return "x".join(map(str, shape))

        head = f"{self.name}: {self.summary}"
        if self.op == "input":
            head += f"   {fmt(self.shape)}"
        elif self.branches:
            head += f"   {len(self.branches)} branches -> {fmt(self.shape)}"
        else:
            head += f"   {fmt(self.in_shape)} -> {fmt(self.shape)}"
        rows = [head]
        sizes = self.sizes
        if len(sizes) == 2 and sizes[0].n == sizes[1].n:  # a square input: one line for both axes
            sizes = [Size("height and width", *[getattr(sizes[0], a) for a in
                                                ("n", "kernel", "pad", "stride", "rounding", "result")])]
        for s in sizes:
            rows.append(("output size", f"{s.axis}: (W - F + 2P)/S + 1 = {s.formula()}"))  # type: ignore[arg-type]
        if self.branches:
            rows.append(("merge", self.merge_formula))  # type: ignore[arg-type]
        rows.append(("parameters", self.params_formula))  # type: ignore[arg-type]
        rows.append(("MACs", self.macs_formula))  # type: ignore[arg-type]
        rows.append(("memory", self.memory_formula))  # type: ignore[arg-type]
        if self.rf is not None:
            f = self.rf
            jump = f"jump {f.jump[0]}" if f.jump[0] == f.jump[1] else f"jump {f.jump[0]}x{f.jump[1]}"
            where = f"on the input, {jump}" if len(self.shape) == 3 else "of the input (all an element sees)"
            rows.append(("receptive field", f"{f.size[0]}x{f.size[1]} {where}"))  # type: ignore[arg-type]
        out = [rows[0]]
        for label, text in rows[1:]:  # type: ignore[misc]
            out.append(f"  {label:<16} {text}")
        return "\n".join(out)


def _n(v: int) -> str:
    return f"{v:,}" + (f" ({human(v)})" if v >= 1000 else "")


def _product(factors: list[int]) -> str:
    return "*".join(str(f) for f in factors)


def _one(g: nx.DiGraph, n: str, fields: dict[str, Field | None]) -> Derivation:
    d = g.nodes[n]
    op, shape, cost = d["op"], tuple(d["shape"]), d["cost"]
    ins = list(d["inputs"])
    in_shape = tuple(g.nodes[ins[0]]["shape"]) if ins else shape
    r = Derivation(n, op.kind, describe(op), ins, in_shape, shape, weights=cost.weights, biases=cost.biases,
                   macs=cost.macs, memory=cost.activations, rf=fields.get(n))
    k = op.kind
    # output size
    if "kernel" in op.attrs and "stride" in op.attrs and len(shape) == 3 and len(in_shape) == 3:
        for a, axis in enumerate(AXES):
            r.sizes.append(Size(axis, in_shape[1 + a], op["kernel"], op.get("pad", 0), op["stride"],
                                op.get("round", "floor"), shape[1 + a]))
    # parameters
    if k == "conv":
        cin, groups, f, kk = in_shape[0], op["groups"], op["kernel"], op["filters"]
        # the formulas below and cnnc.cost must agree (a derivation never contradicts `cnnc inspect`)
        assert f * f * (cin // groups) * kk == cost.weights and prod(shape) * f * f * (cin // groups) == cost.macs
        w = f"({f}*{f}*{cin}/{groups})*{kk}" if groups != 1 else f"({f}*{f}*{cin})*{kk}"
        if cost.biases:
            r.params_formula = f"(F*F*C_in/groups)*K + K = {w} + {kk} = {_n(cost.params)}"
        else:
            r.params_formula = f"(F*F*C_in/groups)*K = {w} = {_n(cost.params)} (no bias)"
        if cost.biases:
            r.params_formula += f"; weights alone {_n(cost.weights)}"
        r.macs_formula = (f"(H_out*W_out*K)*(F*F*C_in/groups) = ({_product(list(shape[1:]) + [shape[0]])})*"
                          f"({f}*{f}*{cin // groups}) = {_n(cost.macs)}")
    elif k == "fc":
        nin = prod(in_shape)
        assert nin * op["out"] == cost.weights == cost.macs
        b = f" + {op['out']}" if cost.biases else " (no bias)"
        r.params_formula = f"in*out + out = {nin}*{op['out']}{b} = {_n(cost.params)}"
        r.macs_formula = f"in*out = {nin}*{op['out']} = {_n(cost.macs)}"
    elif k == "batchnorm":
        r.params_formula = f"2*C = 2*{in_shape[0]} = {cost.params:,} (gamma and beta; the running statistics " \
                           "are buffers)"
    else:
        r.params_formula = f"0: {REASONS.get(k, f'{k} has no parameters')}" if not cost.params else \
            f"{_n(cost.params)}"
    if not r.macs_formula:
        other = f" ({cost.other_ops:,} other operations, counted apart)" if cost.other_ops else ""
        r.macs_formula = f"0: only conv and fc layers multiply-accumulate{other}"
    # memory
    if cost.activations:
        r.memory_formula = f"{_product(list(shape))} = {_n(cost.activations)} values " \
                           f"({human(cost.activations * BYTES_PER_ELEMENT, 'B')} in float32)"
        if len(shape) == 3:
            r.memory_formula = "C*H*W = " + r.memory_formula
    else:
        why = "a view of its input" if k in ("flatten", "slice") else "computed in place"
        r.memory_formula = f"0 new values: {why}"
    # merges
    if k in ("concat", "add"):
        r.branches = [(i, tuple(g.nodes[i]["shape"])) for i in ins]
        if k == "concat":
            parts = " + ".join(str(s[0]) for _, s in r.branches)
            hw = "x".join(str(x) for x in shape[1:])
            r.merge_formula = f"channels {parts} = {shape[0]} -> {hw}x({parts}) = {hw}x{shape[0]} (HxWxC)" \
                if len(shape) == 3 else f"{parts} = {shape[0]}"
        else:
            r.merge_formula = f"{len(ins)} branches of {'x'.join(map(str, shape))}, added element-wise"
    return r


def summary(g: nx.DiGraph, path: str, nodes: list[str]) -> str:
    """One line adding up the layers under a block path: ``three (6 layers): 110,592 weights, ...``."""
    from .claims import target

    cost = [g.nodes[n]["cost"] for n in nodes]
    w, b, m = (sum(c.weights for c in cost), sum(c.biases for c in cost), sum(c.macs for c in cost))
    rf = receptive_fields(g)[target(g, path)]
    seen = f", receptive field {rf.size[0]}x{rf.size[1]}" if rf is not None else ""
    return (f"{path} ({len(nodes)} layers): {_n(w)} weights + {b:,} biases = {_n(w + b)} params, "
            f"{_n(m)} MACs{seen}")


def derive(g: nx.DiGraph, names: list[str] | None = None) -> list[Derivation]:
    """Derivations for ``names`` (all layers, the input included, when None), in declaration order."""
    fields = receptive_fields(g)
    wanted = list(g.nodes) if names is None else [n for n in g.nodes if n in set(names)]
    return [_one(g, n, fields) for n in wanted]
