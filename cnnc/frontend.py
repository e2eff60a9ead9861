"""The front end: ``.cnn`` text -> Lark parse tree -> syntax tree -> graph.

The grammar is ``grammars/cnn.lark`` (shipped as ``cnnc.grammars``); :class:`ToAst`
has one method per grammar rule and turns the parse tree into the small syntax tree
of :mod:`cnnc.syntax`; :mod:`cnnc.build` expands blocks and repeats into the graph.
"""

from __future__ import annotations

import importlib.resources
import re
from functools import lru_cache
from pathlib import Path

import networkx as nx
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import limits
from . import syntax as ast
from .errors import CnncError, InputError, LimitError, Span, SyntaxErrorCnn, read_file


@lru_cache(maxsize=1)
def _parser() -> Lark:
    text = (importlib.resources.files("cnnc.grammars") / "cnn.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def keywords() -> frozenset[str]:
    """The grammar's reserved words (``network``, ``block``, ``expect``, ...), read from the grammar itself."""
    return frozenset(
        t.pattern.value for t in _parser().terminals
        if t.pattern.type == "str" and t.pattern.value.isidentifier()
    )


MAX_DIGITS = 30  # digits of one integer literal (a sanity bound, not a resource limit)


def _span(file: str, tok: Token) -> Span:
    return Span(file, tok.line or 1, tok.column or 1, tok.end_line, tok.end_column)


class ToAst(Transformer):
    """Parse tree -> :mod:`cnnc.syntax` nodes, one method per grammar rule."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, tok: Token) -> Span:
        return _span(self.file, tok)

    def _m(self, meta) -> Span:  # noqa: ANN001 - lark's Meta
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def start(self, items):
        return ast.Program([i for i in items if i is not None])

    def network(self, items):
        (name,) = items
        return ast.NetworkDecl(str(name), self._s(name))

    def _int(self, text: str, tok: Token) -> int:
        # Python refuses to convert digit strings over 4300 digits (a ValueError); any number
        # longer than MAX_DIGITS is far beyond every size limit anyway.
        if len(text) > MAX_DIGITS:
            raise LimitError(f"a number of {len(text)} digits; integer literals have at most {MAX_DIGITS} "
                             "(cnnc.frontend.MAX_DIGITS)",
                             self._s(tok))
        return int(text)

    def input_decl(self, items):
        (tok,) = items
        return ast.InputDecl(tuple(self._int(d, tok) for d in str(tok).split("x")), self._s(tok))

    def output_decl(self, items):
        (ref,) = items
        return ast.OutputDecl(ref)

    def expect_decl(self, items):
        quantity, value, layer = items
        return ast.Expect(str(quantity), str(value), None if layer is None else str(layer), self._s(quantity),
                          self._s(value), None if layer is None else self._s(layer))

    def block_def(self, items):
        name, *params, body = items
        params = [p for p in params if p is not None]
        return ast.BlockDef(str(name), params, body, self._s(name))

    def param(self, items):
        name, default = items
        return ast.Param(str(name), default, self._s(name))

    def chain(self, items):
        return ast.Chain(items)

    def item(self, items):
        label, element = items
        if label is None:
            return ast.Item(None, element, None)
        return ast.Item(str(label), element, self._s(label))

    def call(self, items):
        name, *args = items
        args = [a for a in args if a is not None]
        return ast.Call(str(name), args, self._s(name))

    @v_args(meta=True)
    def positional(self, meta, items):
        return ast.Arg(None, items[0], self._m(meta))

    def keyword(self, items):
        name, value = items
        return ast.Arg(str(name), value, self._s(name))

    def merge(self, items):
        kind, *branches = items
        return ast.Merge(str(kind), branches, self._s(kind))

    @v_args(meta=True)
    def group(self, meta, items):
        return ast.Group(items, self._m(meta))

    @v_args(meta=True)
    def repeat(self, meta, items):
        count, body = items
        return ast.Repeat(count, body, self._m(meta))

    def ref(self, items):
        (name,) = items
        return ast.Ref(str(name), self._s(name))

    # expressions
    def number(self, items):
        (tok,) = items
        text = str(tok)
        value: int | float = float(text) if any(c in text for c in ".eE") else self._int(text, tok)
        return ast.Num(value, self._s(tok))

    def var(self, items):
        (tok,) = items
        return ast.Var(str(tok), self._s(tok))

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.BinOp("-", ast.Num(0, self._m(meta)), items[0], self._m(meta))

    def _bin(op):  # noqa: N805 - a tiny method factory
        @v_args(meta=True)
        def method(self, meta, items):
            return ast.BinOp(op, items[0], items[1], self._m(meta))

        return method

    plus = _bin("+")
    minus = _bin("-")
    times = _bin("*")
    divide = _bin("/")


def _describe_expected(expected: set[str]) -> str:
    names = {
        "NAME": "a name",
        "NUMBER": "a number",
        "SHAPE": "a shape like 3x224x224",
        "LPAR": "'('",
        "RPAR": "')'",
        "LBRACE": "'{'",
        "RBRACE": "'}'",
        "COMMA": "','",
        "COLON": "':'",
        "EQUAL": "'='",
        "SEMICOLON": "';'",
        "_NEWLINE": "a new line",
        "AT": "'@'",
        "CONCAT": "'concat'",
        "ADD": "'add'",
        "CLAIM": "a value like 138M, 34,848 or 55x55x96",
        "LAYER_PATH": "a layer name or block path like stage1/conv1",
        "PLUS": "'+'",
        "MINUS": "'-'",
        "STAR": "'*'",
        "SLASH": "'/'",
        "$END": "the end of the file",
    }
    words = sorted({names.get(e, repr(e.lower()) if e.isupper() else e) for e in expected})
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else "something else"


def _syntax_error(e: UnexpectedInput, file: str, text: str) -> SyntaxErrorCnn:
    line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            found = "end of file"
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        elif tok.type == "_NEWLINE":
            found = "end of line"
        else:
            found = repr(str(tok))
        msg = f"unexpected {found}; expected {_describe_expected(set(e.expected))}"
    elif isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        msg = f"unexpected character {ch!r}"
        allowed = getattr(e, "allowed", None)
        if allowed:
            msg += f"; expected {_describe_expected(set(allowed))}"
    elif isinstance(e, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        msg = f"unexpected end of file; expected {_describe_expected(set(e.expected))}"
    else:  # pragma: no cover - lark's hierarchy is closed
        msg = str(e)
    return SyntaxErrorCnn(msg, Span(file, line, col), text)


TOO_DEEP = "the source nests too deeply to parse (an expression or a chain beyond Python's recursion limit)"
_TOKEN = re.compile(r"#[^\n]*|[A-Za-z0-9_.]+|\S")


def _check_tokens(text: str, source: str) -> None:
    """Before parsing (which costs ~20-50 us a token and recurses per nesting level), refuse a
    source with more than MAX_TOKENS tokens or braces nested deeper than MAX_DEPTH (every brace
    opens a group, merge or repeat, each of which counts against MAX_DEPTH when expanded)."""
    n = depth = 0
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == "#":
            continue
        n += 1
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        if n > limits.MAX_TOKENS or depth > limits.MAX_DEPTH:
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            what = (f"more than {limits.MAX_TOKENS} tokens (cnnc.limits.MAX_TOKENS, env CNNC_MAX_TOKENS)"
                    if n > limits.MAX_TOKENS else
                    f"braces nested deeper than {limits.MAX_DEPTH} levels (cnnc.limits.MAX_DEPTH, env CNNC_MAX_DEPTH)")
            raise LimitError(what, Span(source, line, col), text)


def parse_syntax(text: str, source: str = "<string>") -> ast.Program:
    """Parse ``.cnn`` text into the syntax tree (no expansion, no shapes)."""
    if len(text) > limits.MAX_SOURCE:
        raise LimitError(f"{source}: {len(text)} characters exceed the limit of {limits.MAX_SOURCE} "
                         "(cnnc.limits.MAX_SOURCE, env CNNC_MAX_SOURCE)")
    _check_tokens(text, source)
    try:
        tree = _parser().parse(text + "\n")
    except UnexpectedInput as e:
        raise _syntax_error(e, source, text) from None
    except RecursionError:
        raise LimitError(TOO_DEEP, Span(source, 1, 1), text) from None
    try:
        return ToAst(source).transform(tree)
    except VisitError as e:  # lark wraps what a transformer method raises
        if isinstance(e.orig_exc, CnncError):
            e.orig_exc.source = text
            raise e.orig_exc from None
        if isinstance(e.orig_exc, RecursionError):
            raise LimitError(TOO_DEEP, Span(source, 1, 1), text) from None
        raise
    except RecursionError:
        raise LimitError(TOO_DEEP, Span(source, 1, 1), text) from None


def parse(text: str, source: str = "<string>", name: str | None = None) -> nx.DiGraph:
    """Parse and build a ``.cnn`` network from text; ``name`` is the default network name."""
    from .build import build

    program = parse_syntax(text, source)
    # a network name is an identifier, like one given by `network NAME`: a file name may hold anything
    default = re.sub(r"\W", "_", name or Path(source).stem).strip("_") or "network"
    return build(program, text=text, source=source, default_name=default)


def load(path: str | Path) -> nx.DiGraph:
    """Load a ``.cnn`` file into a graph (shapes and costs inferred)."""
    p = Path(path)
    # bounded: /dev/zero or a 10 GB file must not be read whole
    data = read_file(path, InputError, "a .cnn file", limit=limits.MAX_SOURCE + 1)
    if len(data) > limits.MAX_SOURCE:
        raise LimitError(f"{path}: larger than the limit of {limits.MAX_SOURCE} bytes "
                         "(cnnc.limits.MAX_SOURCE, env CNNC_MAX_SOURCE)")
    try:
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # universal newlines
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse(text, source=str(path), name=p.stem)
