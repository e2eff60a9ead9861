"""From a graph to a backend-neutral schedule: what runs, in which order, reading and writing where.

This is the half of code generation every target shares (the CPU backend in
:mod:`cnnc.codegen.cpu`, the CUDA backend after it). :func:`schedule` turns a graph, with
or without the pass annotations of :mod:`cnnc.passes`, into a :class:`Plan`:

* **Storage.** Every tensor lives in a *buffer* at an element offset within each image:
  buffers are 2-D arrays ``(N, elements per image)`` and a tensor of shape ``(C, H, W)`` at
  offset ``o`` occupies ``buffer[n, o : o + C*H*W]`` of image ``n``, channel-major. A
  channel slice of a tensor is therefore the same buffer at a larger offset (no copy,
  contiguous per image), which is how ``slice`` views, in-place concats and flatten work.
  The graph input lives in the buffer named :data:`INPUT_BUFFER` (the caller's array,
  never written).
* **Aliases.** flatten, dropout and slice are views (no step). relu and softmax run in
  place when their input is read by nobody else; so does an ungrouped conv with a fused
  residual (``fuse_add``), over that residual (its kernels read each residual element before
  they write the same output element: a buffer and a stream of memory traffic saved). A concat
  flagged ``inplace`` has each input computed straight into its channel slice; an input that
  cannot be placed there (the graph input, a slice of a wider tensor, a tensor already placed
  in another concat) is copied instead, so the flag is an optimisation that can never make
  results wrong. An unflagged concat (``-O0``) copies every input.
* **Buffers.** Tensors that own storage get a buffer by liveness (a buffer is reused once
  every reader of its previous tensor has run). The pass-made plan (node ``buffer`` and
  ``g.graph["buffers"]``) is used when it is consistent with these aliases and lifetimes,
  and replaced by this module's own greedy plan otherwise (reported in ``Plan.notes``).
* **Steps.** One :class:`Step` per op that computes something, in topological order, each
  with its input/output :class:`Ref` (buffer, offset, shape), the node whose weights it uses,
  the fused activation, and its source location (``googlenet.cnn:42``) for comments.
* **Parameters.** ``Plan.param_specs`` is the source network's parameter list (``PARAM_SHAPES``:
  the same at every ``-O``); ``Plan.weights`` says how each conv/fc step's effective weight
  and bias are derived from it (the ``parts`` contract: concatenation and batchnorm folding,
  which generated code performs with NumPy when a model is built).
* **Names.** :func:`mangle` turns node names (``i3a/b2/conv1``) into Python identifiers,
  unique within a plan.

A backend then only decides *how* each step runs (which kernel, which scratch memory) and
renders templates through :mod:`cnnc.codegen.render`. Nothing here depends on a target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from math import prod
from pathlib import PurePath
from typing import Any

import networkx as nx

from .. import __version__
from ..errors import CnncError
from ..graph import ordered, param_specs
from ..ops import Op, describe
from ..passes.memplan import overwrites_residual
from ..shapes import Shape, fmt_shape
from .safe import check_name, comment_text

INPUT_BUFFER = "x"
VIEW_KINDS = ("flatten", "dropout", "slice")
INPLACE_KINDS = ("relu", "relu6", "softmax")
WEIGHTED_KINDS = ("conv", "fc")
SUPPORTED_KINDS = frozenset(
    ("input", "conv", "fc", "maxpool", "avgpool", "gap", "lrn", "relu", "relu6", "softmax", "batchnorm",
     "concat", "add") + VIEW_KINDS
)


@dataclass(frozen=True)
class Ref:
    """Where a tensor lives: ``buffer[n, offset : offset + size]`` for each image ``n``."""

    buffer: str
    offset: int
    shape: Shape

    @property
    def size(self) -> int:
        return prod(self.shape)


@dataclass
class Step:
    """One computation: ``kind`` applied to ``inputs`` writing ``output``.

    ``kind`` is the op kind, or ``copy`` (a concat input that is copied into its slice, or an add of one branch;
    with a fused ReLU, such an add is a ``relu``).
    ``node`` names the graph node (for a copy: the concat), ``weights`` the node whose
    effective weights a conv/fc uses (a key of ``Plan.weights``), ``act`` the fused
    activation (``"relu"`` or None), ``inplace`` whether output and input share storage.
    """

    node: str
    kind: str
    op: Op
    inputs: list[Ref]
    output: Ref
    where: str
    what: str
    act: str | None = None
    inplace: bool = False
    weights: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WeightSpec:
    """How a conv/fc node's effective weight and bias come from the source parameters.

    ``parts``: ``(source node, out channels, has bias, batchnorm node or None, eps)`` in
    output-channel order; the effective weight is their concatenation along axis 0 (each
    scaled by ``gamma / sqrt(var + eps)`` when a batchnorm is folded), the bias likewise.
    ``has_bias`` is False only when no part has a bias or a batchnorm.
    """

    node: str
    kind: str
    shape: tuple[int, ...]
    parts: tuple[tuple[str, int, bool, str | None, float], ...]
    has_bias: bool


@dataclass
class Plan:
    """Everything a backend needs to render one network's module."""

    name: str
    source: str
    version: str
    passes: list[str]
    input_shape: Shape
    output_shape: Shape
    output: Ref
    param_specs: list[tuple[str, tuple[int, ...]]]
    layers: list[tuple[str, str, str, int, int, str]]
    steps: list[Step]
    buffers: dict[str, int]
    weights: dict[str, WeightSpec]
    batchnorms: dict[str, tuple[int, float]]
    names: dict[str, str]
    macs: int
    notes: list[str] = field(default_factory=list)
    #: conv node -> kernel strategy forced by the user (``--kernel``); a backend chooses the others
    kernels: dict[str, str] = field(default_factory=dict)


# --- names and locations -----------------------------------------------------------------

def mangle(name: str, taken: set[str] | None = None) -> str:
    """A Python identifier for a node name: ``i3a/b2/conv1`` -> ``i3a_b2_conv1`` (unique in ``taken``)."""
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if taken is not None:
        base, k = ident, 2
        while ident in taken:
            ident = f"{base}_{k}"
            k += 1
        taken.add(ident)
    return ident


def display_source(source: str) -> str:
    """The source path as a header may show it: relative, never absolute."""
    if not source or source.startswith("<"):
        return source or "<string>"
    if os.path.isabs(source):
        rel = os.path.relpath(source)
        return PurePath(rel).as_posix() if not rel.startswith("..") else PurePath(source).name
    return PurePath(source).as_posix()


def _where(g: nx.DiGraph, n: str) -> str:
    span = g.nodes[n].get("span")
    if span is None:
        return "<generated>"
    return comment_text(f"{PurePath(str(span.file)).name}:{span.line}")


def _pad(op: Op) -> int:
    p = op.get("pad", 0)
    return op["kernel"] // 2 if p == "same" else int(p)


# --- storage -----------------------------------------------------------------------------

class _Storage:
    """Alias resolution: each node's tensor is either its own (a root) or inside another's."""

    def __init__(self) -> None:
        self.alias: dict[str, tuple[str, int]] = {}

    def root(self, n: str) -> tuple[str, int]:
        off = 0
        while n in self.alias:
            n, o = self.alias[n]
            off += o
        return n, off


def _consumers(g: nx.DiGraph, order: list[str]) -> dict[str, list[str]]:
    cons: dict[str, list[str]] = {n: [] for n in order}
    for n in order:
        for i in g.nodes[n]["inputs"]:
            cons[i].append(n)
    return cons


def _plan_aliases(g: nx.DiGraph, order: list[str], cons: dict[str, list[str]]
                  ) -> tuple[_Storage, set[str], dict[str, list[bool]]]:
    """Views, in-place ops and in-place concat inputs. Returns the aliases, the nodes that
    run in place, and per concat which inputs are copied."""
    st = _Storage()
    inplace: set[str] = set()
    inp, out = g.graph["input"], g.graph["output"]
    pos = {n: i for i, n in enumerate(order)}
    for n in order:
        d = g.nodes[n]
        op: Op = d["op"]
        if op.kind in VIEW_KINDS:
            src = d["inputs"][0]
            off = 0
            if op.kind == "slice":
                src_shape = g.nodes[src]["shape"]
                off = op["start"] * prod(src_shape[1:])
            st.alias[n] = (src, off)
        elif op.kind in INPLACE_KINDS:
            src = d["inputs"][0]
            # every tensor sharing the storage must be read by this op alone
            chain, ok = src, True
            while True:
                if len(cons[chain]) != 1:
                    ok = False
                    break
                if chain not in st.alias:
                    break
                chain = st.alias[chain][0]
            if ok and chain != inp:
                st.alias[n] = (src, 0)
                inplace.add(n)
        elif overwrites_residual(op):
            # over the residual, when no tensor in its storage is read after this conv (a ResNet block's input:
            # read by the block's first conv, then last by this one) and the conv's input lives elsewhere
            src = d["inputs"][1]
            root = st.root(src)[0]
            sharing = [m for m in order[:pos[n]] if st.root(m)[0] == root]
            if (root != inp and st.root(d["inputs"][0])[0] != root
                    and all(m != out and all(pos[c] <= pos[n] for c in cons[m]) for m in sharing)):
                st.alias[n] = (src, 0)
                inplace.add(n)
    copies: dict[str, list[bool]] = {}
    for n in order:
        d = g.nodes[n]
        op = d["op"]
        if op.kind != "concat":
            continue
        flags: list[bool] = []
        off = 0
        hw = prod(d["shape"][1:])
        for i in d["inputs"]:
            size = prod(g.nodes[i]["shape"])
            copy = True
            if op.get("inplace"):
                r, roff = st.root(i)
                whole = roff == 0 and prod(g.nodes[r]["shape"]) == size
                if whole and r != inp and r != n and g.nodes[r]["op"].kind not in VIEW_KINDS:
                    st.alias[r] = (n, off)
                    copy = False
            flags.append(copy)
            off += g.nodes[i]["shape"][0] * hw
        copies[n] = flags
    return st, inplace, copies


def _greedy_buffers(roots: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """Assign roots ``{node: (first write, last read, size)}`` to buffer ids by liveness."""
    assign: dict[str, int] = {}
    busy: list[tuple[int, int]] = []  # (last read, buffer id)
    free: list[int] = []
    sizes: dict[int, int] = {}
    for n, (start, end, size) in sorted(roots.items(), key=lambda kv: (kv[1][0], kv[0])):
        still = []
        for last, b in busy:
            if last < start:
                free.append(b)
            else:
                still.append((last, b))
        busy = still
        fitting = [b for b in free if sizes[b] >= size]
        if fitting:
            b = min(fitting, key=lambda b: (sizes[b], b))
        elif free:
            b = max(free, key=lambda b: (sizes[b], -b))
            sizes[b] = size
        else:
            b = len(sizes)
            sizes[b] = size
        if b in free:
            free.remove(b)
        busy.append((end, b))
        assign[n] = b
    return assign


def _pass_plan_ok(g: nx.DiGraph, roots: dict[str, tuple[int, int, int]]) -> dict[str, int] | None:
    """The pass-made memory plan restricted to our roots, if it is present and safe."""
    sizes = g.graph.get("buffers")
    if not sizes:
        return None
    assign: dict[str, int] = {}
    for n, (_, _, size) in roots.items():
        b = g.nodes[n].get("buffer")
        if b is None or b not in sizes or sizes[b] < size:
            return None
        assign[n] = b
    by_buf: dict[int, list[tuple[int, int]]] = {}
    for n, b in assign.items():
        by_buf.setdefault(b, []).append(roots[n][:2])
    for spans in by_buf.values():
        spans.sort()
        for (_s0, e0), (s1, _) in zip(spans, spans[1:], strict=False):
            if s1 <= e0:
                return None
    return assign


# --- the schedule ------------------------------------------------------------------------

def _weight_spec(n: str, op: Op, shape: tuple[int, ...]) -> WeightSpec:
    out = op["filters"] if op.kind == "conv" else op["out"]
    parts = op.get("parts")
    if parts:
        ps = tuple((p["node"], int(p["out"]), bool(p.get("bias")), p.get("bn") or None,
                    float(p.get("eps", 1e-5))) for p in parts)
    else:
        ps = ((n, out, bool(op.get("bias", True)), None, 1e-5),)
    has_bias = any(p[2] or p[3] for p in ps)
    return WeightSpec(n, op.kind, shape, ps, has_bias)


def _layer_rows(g: nx.DiGraph, order: list[str]) -> list[tuple[str, str, str, int, int, str]]:
    rows = []
    for n in order:
        d = g.nodes[n]
        c = d["cost"]
        rows.append((n, describe(d["op"]), fmt_shape(d["shape"]), int(c.macs), int(c.params), _where(g, n)))
    return rows


def schedule(g: nx.DiGraph) -> Plan:
    """The backend-neutral :class:`Plan` of graph ``g`` (see the module docstring)."""
    order = ordered(g)
    for n in order:
        kind = g.nodes[n]["op"].kind
        if kind not in SUPPORTED_KINDS:
            raise CnncError(f"code generation does not support op kind {kind!r} (node {n!r})")
        act = g.nodes[n]["op"].get("act")
        if act not in (None, "relu"):
            raise CnncError(f"code generation does not support the fused activation {act!r} (node {n!r})")
    inp, out = g.graph["input"], g.graph["output"]
    cons = _consumers(g, order)
    st, inplace, copies = _plan_aliases(g, order, cons)

    # steps in order, with refs naming the storage root node for now
    def root_ref(n: str) -> Ref:
        r, off = st.root(n)
        return Ref(r, off, tuple(g.nodes[n]["shape"]))

    steps: list[Step] = []
    weights: dict[str, WeightSpec] = {}
    bns: dict[str, tuple[int, float]] = {}
    for n in order:
        d = g.nodes[n]
        op: Op = d["op"]
        kind = op.kind
        if kind == "input" or kind in VIEW_KINDS:
            continue
        where, what = _where(g, n), describe(op)
        ins = [root_ref(i) for i in d["inputs"]]
        if kind == "concat":
            off = 0
            dst = root_ref(n)
            hw = prod(d["shape"][1:])
            for i, src, cp in zip(d["inputs"], ins, copies[n], strict=True):
                if cp:
                    target = Ref(dst.buffer, dst.offset + off, src.shape)
                    steps.append(Step(n, "copy", op, [src], target, where, f"concat: copy {i}"))
                off += g.nodes[i]["shape"][0] * hw
            if not any(copies[n]):
                steps.append(Step(n, "concat", op, [], dst, where, "concat in place (no copy)",
                                  inplace=True))
            continue
        act = op.get("act")
        if kind == "add" and len(ins) == 1:  # an add of one branch is that branch: copied, or through its fused ReLU
            kind, act = ("relu" if act == "relu" else "copy"), None
        step = Step(n, kind, op, ins, root_ref(n), where, what, act=act, inplace=n in inplace)
        if kind in WEIGHTED_KINDS:
            in_shape = tuple(g.nodes[d["inputs"][0]]["shape"])
            if kind == "conv":
                wshape = (op["filters"], in_shape[0] // op["groups"], op["kernel"], op["kernel"])
                step.attrs = {"pad": _pad(op)}
            else:
                wshape = (op["out"], prod(in_shape))
            weights[n] = _weight_spec(n, op, wshape)
            step.weights = n
        elif kind in ("maxpool", "avgpool"):
            step.attrs = {"pad": _pad(op)}
        elif kind == "batchnorm":
            bns[n] = (int(d["shape"][0]), float(op["eps"]))
        steps.append(step)

    # lifetimes of storage roots: first write .. last read (the output's lives to the end)
    span: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for r in s.inputs:
            if r.buffer != inp:
                span.setdefault(r.buffer, [i, i])[1] = i
        if s.output.buffer != inp:
            t = span.setdefault(s.output.buffer, [i, i])
            t[0] = min(t[0], i)
            t[1] = max(t[1], i)
    out_root = st.root(out)[0]
    if out_root != inp:
        span.setdefault(out_root, [len(steps), len(steps)])[1] = len(steps) + 1
    root_info = {r: (s0, e0, prod(g.nodes[r]["shape"])) for r, (s0, e0) in span.items()}
    notes: list[str] = []
    assign = _pass_plan_ok(g, root_info)
    if assign is None:
        if g.graph.get("buffers"):
            notes.append("the pass-made memory plan did not fit this schedule's aliases; replanned")
        assign = _greedy_buffers(root_info)
    ids = sorted(set(assign.values()))
    rename = {b: f"buf{i}" for i, b in enumerate(ids)}
    buffers: dict[str, int] = {}
    for r, b in assign.items():
        name = rename[b]
        buffers[name] = max(buffers.get(name, 0), root_info[r][2])

    def place(r: Ref) -> Ref:
        buf = INPUT_BUFFER if r.buffer == inp else rename[assign[r.buffer]]
        return Ref(buf, r.offset, r.shape)

    for s in steps:
        s.inputs = [place(r) for r in s.inputs]
        s.output = place(s.output)

    taken: set[str] = set()
    names = {n: mangle(check_name(n), taken) for n in order}  # names appear verbatim in comments
    specs = g.graph.get("params") or param_specs(g)
    macs = sum(int(g.nodes[n]["cost"].macs) for n in order)
    return Plan(
        name=comment_text(str(g.graph.get("name") or "network")),  # docstrings show both: no breaking out
        source=comment_text(display_source(str(g.graph.get("source") or "<string>"))),
        version=__version__,
        passes=list(g.graph.get("passes") or []),
        input_shape=tuple(g.nodes[inp]["shape"]),
        output_shape=tuple(g.nodes[out]["shape"]),
        output=place(root_ref(out)),
        param_specs=[(str(nm), tuple(int(x) for x in s)) for nm, s in specs],
        layers=_layer_rows(g, order),
        steps=steps,
        buffers=buffers,
        weights=weights,
        batchnorms=bns,
        names=names,
        macs=macs,
        notes=notes,
        kernels=dict(g.graph.get("kernels") or {}),
    )
