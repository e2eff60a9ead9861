"""Syntax tree -> graph: expands blocks and repeats, names every layer, resolves
references and attributes, and infers shapes and costs as each layer is added, so
every error points at the source line that caused it.

Naming (stable, readable): a layer is named by its label, or ``<kind><n>`` counting
that kind in its scope (``conv1``, ``relu3``). A block call opens a scope named by its
label or ``<block><n>``; a merge's branches are scopes ``b1``, ``b2``... under the merge's
name; names inside a scope are joined with ``/`` (``i3a/b2/conv1``). A block whose body
is a single merge gives the merge its call's name (``i3a``). Labels inside a ``repeat``
get the iteration as suffix (``c_1``, ``c_2``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from typing import Any

import networkx as nx

from . import limits
from . import syntax as ast
from .errors import ArgumentError, CnncError, LimitError, NameErrorCnn, ShapeError, Span, SyntaxErrorCnn
from .explain.claims import claims_from_program
from .graph import INPUT, add_node, new_graph
from .ops import KINDS, ROUNDING, Attr, Op, canonical_kind

Value = int | float | str | bool
WORDS: dict[str, Value] = {
    "same": "same", "floor": "floor", "ceil": "ceil", "strict": "strict", "true": True, "false": False,
}
POSITIVE = {"filters", "kernel", "stride", "groups", "out", "size"}


@dataclass
class Scope:
    """Where a chain is being expanded: its name prefix, block parameters and labels."""

    path: tuple[str, ...]
    env: dict[str, Value]
    labels: dict[str, tuple[str, Span | None]]
    parent: Scope | None = None  # label fallback inside one block instance (repeat iterations)
    suffix: str = ""  # appended to labels inside repeat iterations
    block: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()  # block names being expanded (recursion check)
    block_name: str | None = None

    def lookup(self, name: str) -> tuple[str, Span | None] | None:
        s: Scope | None = self
        while s is not None:
            if name in s.labels:
                return s.labels[name]
            s = s.parent
        return None

    def visible(self) -> list[str]:
        out: list[str] = []
        s: Scope | None = self
        while s is not None:
            out.extend(s.labels)
            s = s.parent
        return out


@dataclass
class Builder:
    g: nx.DiGraph
    text: str
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    counters: dict[tuple[tuple[str, ...], str], int] = field(default_factory=dict)
    depth: int = 0
    sizes: dict[tuple[str, tuple[tuple[str, str, str], ...]], int | None] = field(default_factory=dict)

    # -- errors ----------------------------------------------------------------------------
    def error(self, cls: type[CnncError], msg: str, span: Span | None) -> CnncError:
        return cls(msg, span, self.text)

    @contextmanager
    def nested(self, span: Span) -> Iterator[None]:
        self.depth += 1
        if self.depth > limits.MAX_DEPTH:
            raise self.error(LimitError, f"nesting deeper than {limits.MAX_DEPTH} levels "
                             "(cnnc.limits.MAX_DEPTH, env CNNC_MAX_DEPTH)", span)
        try:
            yield
        finally:
            self.depth -= 1

    # -- names -----------------------------------------------------------------------------
    def auto_name(self, scope: Scope, kind: str) -> str:
        key = (scope.path, kind)
        while True:
            self.counters[key] = self.counters.get(key, 0) + 1
            name = "/".join(scope.path + (f"{kind}{self.counters[key]}",))
            if name not in self.g:
                return name

    def node_name(self, scope: Scope, label: str | None, kind: str, span: Span | None) -> str:
        if label is None:
            return self.auto_name(scope, kind)
        name = "/".join(scope.path + (label + scope.suffix,))
        if name in self.g:
            first = self.g.nodes[name]["span"]
            where = f" (first at line {first.line})" if first else ""
            raise self.error(NameErrorCnn, f"duplicate name {name!r}{where}", span)
        return name

    def define(self, scope: Scope, label: str, node: str, span: Span | None) -> None:
        if label in scope.labels:
            _, first = scope.labels[label]
            where = f", first defined at line {first.line}" if first else ""
            raise self.error(NameErrorCnn, f"duplicate name {label!r}{where}", span)
        if label == INPUT:
            raise self.error(NameErrorCnn, "'input' is reserved for the network's input", span)
        scope.labels[label] = (node, span)

    def add(self, scope: Scope, name: str, op: Op, inputs: list[str], span: Span | None) -> str:
        if self.g.number_of_nodes() >= limits.MAX_NODES:
            raise self.error(LimitError, f"more than {limits.MAX_NODES} layers after expansion "
                             "(cnnc.limits.MAX_NODES, env CNNC_MAX_NODES)", span)
        add_node(self.g, name, op, inputs, span, scope.block)
        d = self.g.nodes[name]
        if prod(d["shape"]) > limits.MAX_TENSOR:
            raise self.error(LimitError, f"{name}: output {d['shape']} has more than {limits.MAX_TENSOR} "
                             "elements per image (cnnc.limits.MAX_TENSOR)", span)
        if d["cost"].weights > limits.MAX_PARAMS:
            raise self.error(LimitError, f"{name}: {d['cost'].weights} weights exceed "
                             f"{limits.MAX_PARAMS} (cnnc.limits.MAX_PARAMS)", span)
        return name

    # -- expressions -----------------------------------------------------------------------
    def value(self, e: ast.Expr, scope: Scope) -> Value:
        if isinstance(e, ast.Num):
            return e.value
        if isinstance(e, ast.Var):
            if e.name in scope.env:
                return scope.env[e.name]
            if e.name in WORDS:
                return WORDS[e.name]
            known = sorted(scope.env) + sorted(WORDS)
            hint = _suggest(e.name, known)
            ctx = f" (parameters of block {scope.block_name!r}: {', '.join(scope.env) or 'none'})" \
                if scope.block_name else ""
            raise self.error(NameErrorCnn, f"undefined name {e.name!r}{ctx}{hint}", e.span)
        a, b = self.value(e.left, scope), self.value(e.right, scope)
        for v, sub in ((a, e.left), (b, e.right)):
            if isinstance(v, (str, bool)):
                raise self.error(ArgumentError, f"cannot compute with {_show(v)}: expected a number",
                                 _expr_span(sub))
        assert isinstance(a, (int, float)) and isinstance(b, (int, float))
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            r = a * b
            if isinstance(r, int) and abs(r) > 1 << 62:
                raise self.error(LimitError, "number too large", e.span)
            return r
        if b == 0:
            raise self.error(ArgumentError, "division by zero", e.span)
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return a / b

    # -- attributes ------------------------------------------------------------------------
    def attrs(self, kind: str, call: ast.Call, scope: Scope) -> dict[str, Any]:
        spec = KINDS[kind]
        given: dict[str, tuple[Value, Span]] = {}
        pos = [a for a in call.args if a.name is None]
        shown = (a.name if a.required else f"{a.name}={_show(a.default)}" for a in spec.attrs)
        signature = f"{kind}({', '.join(shown)})"
        if len(pos) > len(spec.attrs):
            n = len(spec.attrs)
            raise self.error(ArgumentError, f"{kind} takes at most {n} positional argument"
                             f"{'s' if n != 1 else ''}, got {len(pos)}; expected {signature}",
                             pos[n].span if n < len(pos) else call.span)
        seen_kw = False
        for i, arg in enumerate(call.args):
            if arg.name is None:
                if seen_kw:
                    raise self.error(ArgumentError, "positional argument after a keyword argument", arg.span)
                attr = spec.attrs[i]
            else:
                seen_kw = True
                found = spec.attr(arg.name)
                if found is None:
                    names = [a.name for a in spec.attrs]
                    known = ", ".join(names) if names else "none"
                    raise self.error(NameErrorCnn, f"{kind} has no attribute {arg.name!r}"
                                     f"{_suggest(arg.name, names)}; its attributes: {known}", arg.span)
                attr = found
            if attr.name in given:
                raise self.error(ArgumentError, f"{kind}: attribute {attr.name!r} given twice", arg.span)
            given[attr.name] = (self.value(arg.value, scope), arg.span)
        out: dict[str, Any] = {}
        for attr in spec.attrs:
            if attr.name in given:
                v, sp = given[attr.name]
                out[attr.name] = self.coerce(kind, attr, v, sp)
            elif attr.required:
                raise self.error(ArgumentError, f"{kind}: missing attribute {attr.name!r}; expected {signature}",
                                 call.span)
            else:
                out[attr.name] = attr.default
        if kind in ("maxpool", "avgpool") and not out["stride"]:
            out["stride"] = out["kernel"]
        if out.get("pad") == "same":
            k, s = out["kernel"], out["stride"]
            if k % 2 == 0 or s != 1:
                raise self.error(ArgumentError, f"pad=same needs an odd kernel and stride 1 "
                                 f"(got kernel {k}, stride {s}); give the padding as a number",
                                 given["pad"][1])
            out["pad"] = k // 2
        return out

    def coerce(self, kind: str, attr: Attr, v: Value, span: Span) -> Any:
        what = f"{kind}: {attr.name}"
        if attr.type == "bool":
            if not isinstance(v, bool):
                raise self.error(ArgumentError, f"{what} must be true or false, got {_show(v)}", span)
            return v
        if attr.type == "round":
            if v not in ROUNDING:
                raise self.error(ArgumentError, f"{what} must be one of {', '.join(ROUNDING)}, got {_show(v)}",
                                 span)
            return v
        if attr.type == "pad" and v == "same":
            return v
        if attr.type == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.error(ArgumentError, f"{what} must be a number, got {_show(v)}", span)
            v = float(v)
            if attr.name == "p" and not 0 <= v < 1:
                raise self.error(ArgumentError, f"{what} must be in [0, 1), got {v:g}", span)
            if attr.name == "eps" and not v > 0:
                raise self.error(ArgumentError, f"{what} must be positive, got {v:g}", span)
            if v != v or v in (float("inf"), float("-inf")):
                raise self.error(ArgumentError, f"{what} must be finite", span)
            return v
        # int and pad
        if isinstance(v, bool) or not isinstance(v, int):
            extra = " or same" if attr.type == "pad" else ""
            raise self.error(ArgumentError, f"{what} must be a whole number{extra}, got {_show(v)}", span)
        if attr.name in POSITIVE and v <= 0:
            raise self.error(ArgumentError, f"{what} must be positive, got {v}", span)
        if v < 0:
            raise self.error(ArgumentError, f"{what} must not be negative, got {v}", span)
        if v > limits.MAX_DIM:
            raise self.error(LimitError, f"{what} = {v} exceeds the limit {limits.MAX_DIM} "
                             "(cnnc.limits.MAX_DIM, env CNNC_MAX_DIM)", span)
        return v

    # -- structure -------------------------------------------------------------------------
    def chain(self, chain: ast.Chain, cur: str, scope: Scope, merge_name: str | None = None) -> str:
        for item in chain.items:
            cur = self.item(item, cur, scope, merge_name if len(chain.items) == 1 else None)
        return cur

    def item(self, item: ast.Item, cur: str, scope: Scope, merge_name: str | None) -> str:
        el, label = item.element, item.label
        if isinstance(el, ast.Call):
            out = self.call(el, cur, scope, label, item.label_span)
        elif isinstance(el, ast.Merge):
            out = self.merge(el, cur, scope, label, item.label_span, merge_name if label is None else None)
        elif isinstance(el, ast.Group):
            with self.nested(el.span):
                for c in el.chains:
                    cur = self.chain(c, cur, scope)
            out = cur
        elif isinstance(el, ast.Repeat):
            out = self.repeat(el, cur, scope)
        else:
            out = self.ref(el, scope)
        if label is not None:
            self.define(scope, label, out, item.label_span)
        return out

    def ref(self, ref: ast.Ref, scope: Scope) -> str:
        found = scope.lookup(ref.name)
        if found is None:
            if ref.name == INPUT and scope.block_name is None:
                return INPUT
            raise self.error(NameErrorCnn, f"undefined reference @{ref.name}"
                             f"{_suggest(ref.name, scope.visible())}", ref.span)
        return found[0]

    def call(self, call: ast.Call, cur: str, scope: Scope, label: str | None, label_span: Span | None) -> str:
        if call.name == "identity":
            if call.args:
                raise self.error(ArgumentError, "identity takes no arguments", call.args[0].span)
            return cur
        kind = canonical_kind(call.name)
        if kind is not None and not KINDS[kind].merge and kind != "input":
            op = Op(kind, self.attrs(kind, call, scope))
            return self.add(scope, self.node_name(scope, label, kind, label_span or call.span), op, [cur],
                            call.span)
        if call.name in self.blocks:
            return self.block_call(self.blocks[call.name], call, cur, scope, label, label_span)
        names = [k for k in KINDS if k not in ("input", "concat", "add")] + sorted(self.blocks)
        hint = _suggest(call.name, names + list(KINDS_ALIASES))
        if scope.lookup(call.name) is not None:
            hint = f"; to use the layer labelled {call.name!r}, write @{call.name}"
        raise self.error(NameErrorCnn, f"unknown layer kind or block {call.name!r}{hint}; "
                         f"layer kinds: {', '.join(names[:len(names) - len(self.blocks)])}"
                         + (f"; blocks: {', '.join(sorted(self.blocks))}" if self.blocks else ""),
                         call.span)

    def block_call(self, block: ast.BlockDef, call: ast.Call, cur: str, scope: Scope, label: str | None,
                   label_span: Span | None) -> str:
        if block.name in scope.calls:
            cycle = " -> ".join(scope.calls[scope.calls.index(block.name):] + (block.name,))
            raise self.error(NameErrorCnn, f"block {block.name!r} calls itself ({cycle}); blocks cannot be "
                             "recursive", call.span)
        env = self.bind(block, call, scope)
        size = self.block_size(block, env, scope.calls)
        if size is not None and self.g.number_of_nodes() + size > limits.MAX_NODES:
            raise self.error(LimitError, f"block {block.name!r} would expand to {size} layers, more than "
                             f"{limits.MAX_NODES} in all (cnnc.limits.MAX_NODES, env CNNC_MAX_NODES)", call.span)
        local = (label + scope.suffix) if label is not None else None
        if local is None:
            local = self.auto_name(scope, block.name).rsplit("/", 1)[-1]
        inner = Scope(path=scope.path + (local,), env=env, labels={}, block=scope.block + (local,),
                      calls=scope.calls + (block.name,), block_name=block.name)
        with self.nested(call.span):
            try:
                return self.chain(block.body, cur, inner, merge_name="/".join(inner.path))
            except CnncError as e:
                e.notes.append(f"in block {block.name!r} called as {'/'.join(inner.path)} at {call.span}")
                raise

    # -- size estimate: refuse an exponential block before expanding it -----------------------
    def block_size(self, block: ast.BlockDef, env: dict[str, Value], calls: tuple[str, ...]) -> int | None:
        """The layers a call of ``block`` with parameters ``env`` adds, counted without building
        (memoised per block and arguments); None when unknown (the build then reports the error)."""
        key = (block.name, tuple(sorted((k, type(v).__name__, repr(v)) for k, v in env.items())))
        if key not in self.sizes:
            self.sizes[key] = None  # a recursive call counts as unknown
            self.sizes[key] = self._size_chain(block.body, env, calls + (block.name,), len(calls))
        return self.sizes[key]

    def _size_chain(self, chain: ast.Chain, env: dict[str, Value], calls: tuple[str, ...], depth: int) -> int | None:
        total = 0
        for item in chain.items:
            n = self._size_element(item.element, env, calls, depth + 1)
            if n is None:
                return None
            total += n
        return total

    def _size_element(self, el: ast.Element, env: dict[str, Value], calls: tuple[str, ...],
                      depth: int) -> int | None:
        if depth > limits.MAX_DEPTH:
            return None
        scope = Scope((), env, {})
        try:
            if isinstance(el, ast.Call):
                kind = canonical_kind(el.name)
                if el.name == "identity" or (kind is not None and not KINDS[kind].merge and kind != "input"):
                    return 0 if el.name == "identity" else 1
                block = self.blocks.get(el.name)
                if block is None or block.name in calls:
                    return None
                return self.block_size(block, self.bind(block, el, scope), calls)
            if isinstance(el, (ast.Merge, ast.Group)):
                chains = el.branches if isinstance(el, ast.Merge) else el.chains
                sizes = [self._size_chain(c, env, calls, depth) for c in chains]
                if any(n is None for n in sizes):
                    return None
                return sum(sizes) + (1 if isinstance(el, ast.Merge) else 0)  # type: ignore[arg-type]
            if isinstance(el, ast.Repeat):
                n = self.value(el.count, scope)
                body = self._size_element(el.body, env, calls, depth)
                if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or body is None:
                    return None
                return n * body
        except CnncError:
            return None
        return 0  # a reference

    def bind(self, block: ast.BlockDef, call: ast.Call, scope: Scope) -> dict[str, Value]:
        names = [p.name for p in block.params]
        sig = f"{block.name}({', '.join(names)})"
        pos = [a for a in call.args if a.name is None]
        if len(pos) > len(names):
            raise self.error(ArgumentError, f"block {sig} takes {len(names)} argument"
                             f"{'s' if len(names) != 1 else ''}, got {len(pos)}", call.span)
        env: dict[str, Value] = {}
        for i, arg in enumerate(call.args):
            if arg.name is None:
                name = names[i]
            else:
                if arg.name not in names:
                    raise self.error(NameErrorCnn, f"block {sig} has no parameter {arg.name!r}"
                                     f"{_suggest(arg.name, names)}", arg.span)
                name = arg.name
            if name in env:
                raise self.error(ArgumentError, f"argument {name!r} of block {sig} given twice", arg.span)
            env[name] = self.value(arg.value, scope)
        for p in block.params:
            if p.name not in env:
                if p.default is None:
                    missing = [q.name for q in block.params if q.name not in env and q.default is None]
                    raise self.error(ArgumentError, f"block {sig} takes {len(names)} arguments, got "
                                     f"{len(call.args)}: missing {', '.join(missing)}", call.span)
                env[p.name] = self.value(p.default, Scope((), {}, {}))
        return env

    def merge(self, m: ast.Merge, cur: str, scope: Scope, label: str | None, label_span: Span | None,
              merge_name: str | None) -> str:
        if merge_name is not None:
            name, branch_path = merge_name, scope.path
        else:
            name = self.node_name(scope, label, m.kind, label_span or m.span)
            branch_path = tuple(name.split("/"))
        if not m.branches:
            raise self.error(ArgumentError, f"{m.kind} needs at least one branch", m.span)
        outs = []
        with self.nested(m.span):
            for i, branch in enumerate(m.branches, 1):
                bscope = Scope(branch_path + (f"b{i}",), scope.env, scope.labels, scope.parent, scope.suffix,
                               scope.block, scope.calls, scope.block_name)
                outs.append(self.chain(branch, cur, bscope))
        if name in self.g:
            raise self.error(NameErrorCnn, f"duplicate name {name!r}", label_span or m.span)
        return self.add(scope, name, Op(m.kind, {}), outs, m.span)

    def repeat(self, r: ast.Repeat, cur: str, scope: Scope) -> str:
        n = self.value(r.count, scope)
        if isinstance(n, bool) or not isinstance(n, int):
            raise self.error(ArgumentError, f"repeat count must be a whole number, got {_show(n)}",
                             _expr_span(r.count))
        if n <= 0:
            raise self.error(ArgumentError, f"repeat count must be positive, got {n}", _expr_span(r.count))
        if n > limits.MAX_REPEAT:
            raise self.error(LimitError, f"repeat {n} exceeds the limit {limits.MAX_REPEAT} "
                             "(cnnc.limits.MAX_REPEAT, env CNNC_MAX_REPEAT)", _expr_span(r.count))
        with self.nested(r.span):
            before = self.g.number_of_nodes()
            for i in range(1, n + 1):
                if i == 2:  # every iteration adds as many layers as the first: refuse now, not after 100k
                    total = before + n * (self.g.number_of_nodes() - before)
                    if total > limits.MAX_NODES:
                        raise self.error(LimitError, f"repeat {n} would make {total} layers, more than "
                                         f"{limits.MAX_NODES} (cnnc.limits.MAX_NODES, env CNNC_MAX_NODES)",
                                         _expr_span(r.count))
                it = Scope(scope.path, scope.env, {}, scope, f"{scope.suffix}_{i}", scope.block, scope.calls,
                           scope.block_name)
                for c in r.body.chains:
                    cur = self.chain(c, cur, it)
                for lab, (node, sp) in it.labels.items():
                    self.define(scope, f"{lab}_{i}", node, sp)
        return cur


KINDS_ALIASES = sorted({a for k in KINDS.values() for a in k.aliases} | {"identity"})


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return repr(v)


def _expr_span(e: ast.Expr) -> Span:
    return e.span


def build(program: ast.Program, text: str, source: str, default_name: str) -> nx.DiGraph:
    """Expand a parsed program into a graph with shapes and costs."""
    name: str | None = None
    name_span: Span | None = None
    blocks: dict[str, ast.BlockDef] = {}
    for st in program.statements:
        if isinstance(st, ast.NetworkDecl):
            if name is not None:
                raise NameErrorCnn(f"the network is already named {name!r} at line {name_span.line}"
                                   if name_span else "duplicate network name", st.span, text)
            name, name_span = st.name, st.span
        elif isinstance(st, ast.BlockDef):
            if st.name in blocks:
                raise NameErrorCnn(f"block {st.name!r} is already defined at line {blocks[st.name].span.line}",
                                   st.span, text)
            if canonical_kind(st.name) is not None or st.name == "identity":
                raise NameErrorCnn(f"block name {st.name!r} is a layer kind; choose another name",
                                   st.span, text)
            seen: set[str] = set()
            for p in st.params:
                if p.name in seen:
                    raise NameErrorCnn(f"parameter {p.name!r} appears twice in block {st.name!r}", p.span, text)
                seen.add(p.name)
            blocks[st.name] = st
    b: Builder | None = None
    scope = Scope((), {}, {})
    cur = INPUT
    output: str | None = None
    for st in program.statements:
        if isinstance(st, ast.InputDecl):
            if b is not None:
                raise NameErrorCnn("a second input declaration; a network has one input", st.span, text)
            _check_input(st, text)
            g = new_graph(name or default_name, st.shape, source=source, text=text, span=st.span)
            b = Builder(g, text, blocks)
        elif isinstance(st, ast.Chain):
            if b is None:
                first = st.items[0]
                sp = first.label_span or getattr(first.element, "span", None)
                raise SyntaxErrorCnn("a layer before the input declaration; expected `input CxHxW` first "
                                 "(e.g. `input 3x224x224`)", sp, text)
            cur = b.chain(st, cur, scope)
        elif isinstance(st, ast.OutputDecl):
            if b is None:
                raise SyntaxErrorCnn("output declared before the input", st.ref.span, text)
            if output is not None:
                raise NameErrorCnn("a second output declaration; cnnc supports one output", st.ref.span, text)
            output = b.ref(st.ref, scope)
    if b is None:
        raise SyntaxErrorCnn("no input declaration; expected `input CxHxW` (e.g. `input 3x224x224`)",
                         Span(source, 1, 1), text)
    b.g.graph["output"] = output or cur
    # `expect` statements: checked by `cnnc check`, never part of the network (names resolved here,
    # after the whole file, so a claim may stand anywhere)
    b.g.graph["claims"] = claims_from_program(b.g, program.statements, text)
    return b.g


def _check_input(st: ast.InputDecl, text: str) -> None:
    if len(st.shape) not in (1, 3):
        raise ShapeError(f"input shape must be CxHxW (or a flat F), got {'x'.join(map(str, st.shape))}",
                         st.span, text)
    for d in st.shape:
        if d <= 0:
            raise ShapeError(f"input sizes must be positive, got {'x'.join(map(str, st.shape))}", st.span, text)
        if d > limits.MAX_DIM:
            raise LimitError(f"input size {d} exceeds the limit {limits.MAX_DIM} (cnnc.limits.MAX_DIM)",
                             st.span, text)
    if prod(st.shape) > limits.MAX_TENSOR:
        raise LimitError(f"input has more than {limits.MAX_TENSOR} elements (cnnc.limits.MAX_TENSOR)",
                         st.span, text)
