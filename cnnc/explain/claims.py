"""Claims: published numbers written into a ``.cnn`` file (``expect params = 138M``) and checked.

A claim names a quantity, a value as the paper prints it and optionally a layer or block path
(``@conv1``, ``@i3a``, ``@stage1/conv1``); without one it is about the whole network. A path
covers the layer of that name and every layer inside it (a block instance, a merge's branches).

Values follow the paper's rounding: a value with an SI suffix or a decimal point (``138M``,
``15.2M``, ``35K``) holds within half a unit of its last digit; a plain integer (``34,848``) must
be exact. Memory may be given in bytes (``96MB``: float32 values, 4 bytes each). Shapes are
written as the lecture writes them, ``HxWxC`` (``55x55x96``), or ``F`` for a
flat vector; receptive fields as ``HxW`` or one size.

When a claim fails, :func:`check` looks for a cause it can verify by recomputing: biases counted
or not, FLOPs for MACs, the input or in-place layers counted or not, one layer counted twice or
left out, floor versus ceil rounding, channels written first. Claims never change the network.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from math import prod
from typing import Any

import networkx as nx

from ..errors import ArgumentError, CnncError, LimitError, NameErrorCnn, Span
from ..graph import refresh
from ..report import human
from ..syntax import Expect
from .receptive import receptive_fields

QUANTITIES: dict[str, str] = {
    "params": "parameters, weights and biases",
    "weights": "weights without biases",
    "biases": "biases",
    "macs": "multiply-accumulates of conv and fc layers",
    "flops": "floating-point operations, 2 per multiply-accumulate",
    "memory": "activation values (for the whole network: the input included)",
    "output": "the output shape, HxWxC as the lecture writes it, or F for a flat vector",
    "rf": "the receptive field on the input, HxW or one size",
}
ALIASES = {"receptive_field": "rf", "parameters": "params"}
SHAPED = ("output", "rf")
SUFFIX = {"": 0, "k": 3, "K": 3, "M": 6, "G": 9, "T": 12}
MAX_DIGITS = 30  # as the front end: far beyond any count cnnc can compute
_COUNT = re.compile(r"([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?([kKMGT]?)(B?)")  # commas group thousands
BYTES_PER_VALUE = 4  # a memory claim in bytes (96MB) counts float32 values
_SHAPE = re.compile(r"[0-9]+(?:x[0-9]+)*")


@dataclass(frozen=True)
class Claim:
    """One ``expect`` statement, resolved: the quantity, the value as written and parsed, the layer."""

    quantity: str
    written: str
    layer: str | None
    span: Span
    value: Decimal | None = None  # counts
    unit: Decimal = Decimal(0)  # 0: exact; else the unit of the last digit written
    shape: tuple[int, ...] | None = None  # output / rf
    per_value: int = 1  # a memory claim in bytes: BYTES_PER_VALUE

    def statement(self) -> str:
        at = f" @{self.layer}" if self.layer else ""
        return f"expect {self.quantity} = {self.written}{at}"

    def accepts(self, computed: int | tuple[int, ...]) -> bool:
        if self.shape is not None:
            return computed == self.shape
        assert self.value is not None and isinstance(computed, int)
        return abs(Decimal(computed * self.per_value) - self.value) * 2 <= self.unit


@dataclass
class Result:
    claim: Claim
    computed: int | tuple[int, ...]
    holds: bool
    causes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # the causes looked for, when none was found

    def as_dict(self) -> dict[str, Any]:
        c = self.claim
        return {"statement": c.statement(), "quantity": c.quantity, "value": c.written, "layer": c.layer,
                "bytes_per_value": c.per_value,
                "line": c.span.line, "column": c.span.column,
                "computed": list(self.computed) if isinstance(self.computed, tuple) else self.computed,
                "holds": self.holds, "causes": list(self.causes), "checked": list(self.checked)}


# -- building claims from the syntax tree ------------------------------------------------------

def make_claim(g: nx.DiGraph, quantity: str, written: str, layer: str | None, span: Span, value_span: Span,
               layer_span: Span | None, text: str) -> Claim:
    """Validate an ``expect`` statement against the built graph (errors carry file:line:col)."""
    q = ALIASES.get(quantity, quantity)
    if q not in QUANTITIES:
        close = difflib.get_close_matches(quantity, list(QUANTITIES) + list(ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise NameErrorCnn(f"unknown claim quantity {quantity!r}{hint}; expected one of {', '.join(QUANTITIES)}",
                           span, text)
    if layer is not None and not scope(g, layer):
        close = difflib.get_close_matches(layer, list(g.nodes), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise NameErrorCnn(f"expect names an unknown layer or block @{layer}{hint}; claims name layers by their "
                           "full name as `cnnc inspect` lists them", layer_span, text)
    digits = sum(ch.isdigit() for ch in written)
    if digits > MAX_DIGITS:
        raise LimitError(f"a claim of {digits} digits; claims have at most {MAX_DIGITS}", value_span, text)
    if q in SHAPED:
        if not _SHAPE.fullmatch(written):
            what = "a shape like 55x55x96 (HxWxC) or 4096" if q == "output" else "a size like 7x7 or 7"
            raise ArgumentError(f"expect {q} needs {what}, got {written!r}", value_span, text)
        dims = tuple(int(d) for d in written.split("x"))
        if q == "rf" and len(dims) == 1:
            dims = dims * 2
        if q == "rf" and len(dims) != 2:
            raise ArgumentError(f"expect rf needs HxW or one size, got {written!r}", value_span, text)
        if q == "rf" and len(g.nodes[g.graph["input"]]["shape"]) != 3:
            raise ArgumentError("expect rf: the network's input is a flat vector, not an image; receptive fields "
                                "are measured on a CxHxW input", span, text)
        if q == "output" and len(dims) not in (1, 3):
            raise ArgumentError(f"expect output needs HxWxC or F, got {written!r}", value_span, text)
        return Claim(q, written, layer, span, shape=dims)
    m = _COUNT.fullmatch(written)
    if m is None:
        raise ArgumentError(f"expect {q} needs a count like 138M, 15.2M or 34,848, got {written!r}",
                            value_span, text)
    whole, frac, suffix, in_bytes = m.group(1).replace(",", ""), m.group(2) or "", m.group(3), m.group(4)
    if in_bytes and q != "memory":
        raise ArgumentError(f"expect {q} counts, not bytes: got {written!r}; only memory may be given in bytes "
                            "(96MB: float32 values, 4 bytes each)", value_span, text)
    scale = SUFFIX[suffix]
    value = Decimal(f"{whole}.{frac}" if frac else whole).scaleb(scale)
    unit = Decimal(1).scaleb(scale - len(frac)) if (suffix or frac) else Decimal(0)
    return Claim(q, written, layer, span, value=value, unit=unit, per_value=BYTES_PER_VALUE if in_bytes else 1)


def claims_from_program(g: nx.DiGraph, statements: list[Any], text: str) -> list[Claim]:
    """The claims of a program's ``expect`` statements, in source order."""
    return [make_claim(g, st.quantity, st.value, st.layer, st.span, st.value_span, st.layer_span, text)
            for st in statements if isinstance(st, Expect)]


# -- computing -----------------------------------------------------------------------------------

def scope(g: nx.DiGraph, path: str) -> list[str]:
    """The layer named ``path`` and every layer inside it (``path/...``), in declaration order."""
    prefix = path + "/"
    return [n for n in g.nodes if n == path or n.startswith(prefix)]


def target(g: nx.DiGraph, path: str | None) -> str:
    """The node whose output a shape claim is about: the layer itself, or a block's last layer."""
    if path is None:
        return g.graph["output"]
    if path in g:
        return path
    return scope(g, path)[-1]


def lecture_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """cnnc's CxHxW as the lecture writes it, HxWxC."""
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def fmt_dims(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims)


def _count(g: nx.DiGraph, quantity: str, nodes: list[str]) -> int:
    total = 0
    for n in nodes:
        c = g.nodes[n]["cost"]
        total += {"params": c.params, "weights": c.weights, "biases": c.biases, "macs": c.macs,
                  "flops": 2 * c.macs, "memory": c.activations}[quantity]
    return total


def compute(g: nx.DiGraph, claim: Claim) -> int | tuple[int, ...]:
    """The value cnnc computes for ``claim`` on ``g``."""
    if claim.quantity == "output":
        return lecture_shape(g.nodes[target(g, claim.layer)]["shape"])
    if claim.quantity == "rf":
        f = receptive_fields(g)[target(g, claim.layer)]
        return f.size if f is not None else ()
    nodes = list(g.nodes) if claim.layer is None else scope(g, claim.layer)
    return _count(g, claim.quantity, nodes)


# -- causes --------------------------------------------------------------------------------------

def _n(v: int) -> str:
    return f"{v:,} ({human(v)})" if v >= 1000 else f"{v:,}"


def _count_causes(g: nx.DiGraph, claim: Claim, computed: int) -> tuple[list[str], list[str]]:
    q, nodes = claim.quantity, (list(g.nodes) if claim.layer is None else scope(g, claim.layer))
    causes: list[str] = []
    checked: list[str] = []
    ok = claim.accepts

    def other(quantity: str) -> int:
        return _count(g, quantity, nodes)

    if q in ("params", "weights"):
        checked.append("biases counted or not")
        w, b = other("weights"), other("biases")
        if q == "params" and b and ok(w):
            causes.append(f"biases not counted: the claim matches the {_n(w)} weights alone (+ {b:,} biases)")
        if q == "weights" and b and ok(w + b):
            causes.append(f"biases counted: the claim matches weights + biases = {w:,} + {b:,} = {_n(w + b)}")
    if q in ("macs", "flops"):
        checked.append("FLOPs versus MACs")
        macs = other("macs")
        if q == "macs" and macs and ok(2 * macs):
            causes.append(f"FLOPs counted as MACs: 2 x {macs:,} = {_n(2 * macs)}")
        if q == "flops" and macs and ok(macs):
            causes.append(f"MACs counted as FLOPs: the claim matches {_n(macs)} multiply-accumulates")
    if q == "memory":
        inp = g.graph["input"]
        size = g.nodes[inp]["cost"].activations
        checked.append("the input counted or not")
        if inp in nodes and ok(computed - size):
            causes.append(f"the input not counted: {computed:,} - {size:,} (input) = {_n(computed - size)}")
        if inp not in nodes and ok(computed + size):
            causes.append(f"the input counted: {computed:,} + {size:,} (input) = {_n(computed + size)}")
        in_place = sum(prod(g.nodes[n]["shape"]) for n in nodes if g.nodes[n]["cost"].activations == 0
                       and g.nodes[n]["op"].kind != "input")
        checked.append("in-place layers (relu, dropout, flatten) counted as tensors")
        if in_place and ok(computed + in_place):
            causes.append(f"in-place layers counted as new tensors: {computed:,} + {in_place:,} = "
                          f"{_n(computed + in_place)}")
    if len(nodes) > 1:
        checked.append("one layer counted twice or left out")
        per = [(n, _count(g, q, [n])) for n in nodes if n != g.graph["input"]]  # the input: checked above
        for sign, what in ((1, "counted twice"), (-1, "left out")):
            hits = [(n, v) for n, v in per if v and ok(computed + sign * v)]
            by_value: dict[int, list[str]] = {}
            for n, v in hits:
                by_value.setdefault(v, []).append(n)
            for v, names in by_value.items():
                who = " or ".join(names)
                op = "+" if sign > 0 else "-"
                causes.append(f"one layer {what}: {computed:,} {op} {v:,} ({who}) = {_n(computed + sign * v)}")
    return causes, checked


def _rounding_variants(g: nx.DiGraph, claim: Claim) -> list[tuple[str, nx.DiGraph]]:
    """The network up to the claim's layer with other rounding: the layer's own flipped (floor <->
    ceil), then every pooling layer floor, then every pooling layer ceil (Caffe's rule)."""
    flip = {"floor": "ceil", "ceil": "floor"}
    pools = ("maxpool", "avgpool")
    t = target(g, claim.layer)
    # only the layers up to the claim's: a later layer may not fit the other rounding
    keep = nx.ancestors(g, t) | {t}
    upto = g.copy()  # not g.subgraph(): its node order follows a set, and the output must be deterministic
    upto.remove_nodes_from([n for n in g.nodes if n not in keep])
    variants: list[tuple[str, nx.DiGraph]] = []
    own = g.nodes[t]["op"]
    if own.get("round") in flip:
        h = upto.copy()
        h.nodes[t]["op"] = own.replace(round=flip[own["round"]])
        variants.append((f"{flip[own['round']]} instead of {own['round']} rounding in {t}", h))
    for rule in ("floor", "ceil"):
        h = upto.copy()
        changed = [n for n in h.nodes if h.nodes[n]["op"].kind in pools
                   and h.nodes[n]["op"].get("round") == flip[rule]]
        for n in changed:
            h.nodes[n]["op"] = h.nodes[n]["op"].replace(round=rule)
        if changed:
            variants.append((f"{rule} instead of {flip[rule]} rounding in pooling ({', '.join(changed)})", h))
    out = []
    for why, h in variants:
        try:
            refresh(h)
        except CnncError:
            continue
        out.append((why, h))
    return out


def _shape_causes(g: nx.DiGraph, claim: Claim, computed: tuple[int, ...]) -> tuple[list[str], list[str]]:
    causes: list[str] = []
    checked: list[str] = []
    if claim.quantity == "output":
        checked.append("channels written first")
        raw = g.nodes[target(g, claim.layer)]["shape"]
        if len(raw) == 3 and raw != computed and claim.shape == tuple(raw):
            causes.append(f"written channels first (cnnc's CxHxW); claims are HxWxC: {fmt_dims(computed)}")
    checked.append("floor versus ceil rounding")
    for why, h in _rounding_variants(g, claim):
        if claim.accepts(compute(h, claim)):
            causes.append(f"{why} gives {claim.written}")
            break  # the most specific explanation
    return causes, checked


def check(g: nx.DiGraph, claims: list[Claim] | None = None) -> list[Result]:
    """Check every claim of ``g`` (``g.graph["claims"]``, or ``claims``); a failure gets its causes."""
    out = []
    for claim in (g.graph.get("claims", []) if claims is None else claims):
        computed = compute(g, claim)
        holds = claim.accepts(computed)
        r = Result(claim, computed, holds)
        if not holds:
            if isinstance(computed, tuple):
                r.causes, checked = _shape_causes(g, claim, computed)
            else:
                r.causes, checked = _count_causes(g, claim, computed)
            r.checked = [] if r.causes else checked
        out.append(r)
    return out


def render(results: list[Result], strict: bool = False) -> str:
    """Compiler-style lines: ``file:line:col: holds: ...`` or a warning (an error with ``strict``)."""
    lines = []
    for r in results:
        c = r.claim
        shown = fmt_dims(r.computed) if isinstance(r.computed, tuple) else _n(r.computed)
        if c.per_value != 1 and isinstance(r.computed, int):
            size = r.computed * c.per_value
            shown = f"{r.computed:,} values = {size:,} bytes ({human(size, 'B')}) in float32"
        if r.holds:
            exact = fmt_dims(r.computed) if isinstance(r.computed, tuple) else f"{r.computed:,}"
            if c.per_value != 1:
                exact = shown
            lines.append(f"{c.span}: holds: {c.statement()}  (computed {exact})")
            continue
        level = "error" if strict else "warning"
        gap = ""
        if c.value is not None and isinstance(r.computed, int):
            diff = int(c.value) - r.computed * c.per_value
            gap = f" (the claim is {abs(diff):,} {'bytes ' if c.per_value != 1 else ''}" \
                  f"{'more' if diff > 0 else 'less'})"
        lines.append(f"{c.span}: {level}: {c.statement()} does not hold: computed {shown}{gap}")
        for cause in r.causes:
            lines.append(f"    cause: {cause}")
        if not r.causes:
            lines.append(f"    no single cause found (checked: {', '.join(r.checked) or 'nothing applies'})")
    failed = sum(not r.holds for r in results)
    lines.append(f"{len(results)} claim{'s' if len(results) != 1 else ''}: {len(results) - failed} hold, "
                 f"{failed} fail{'s' if failed == 1 else ''}")
    return "\n".join(lines) + "\n"
