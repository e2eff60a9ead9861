"""The syntax tree of a ``.cnn`` file, as the Transformer in :mod:`cnnc.frontend` builds it.

Plain records, each with the :class:`~cnnc.errors.Span` it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Span


@dataclass
class Num:
    value: int | float
    span: Span


@dataclass
class Var:
    name: str
    span: Span


@dataclass
class BinOp:
    op: str
    left: Expr
    right: Expr
    span: Span


Expr = Num | Var | BinOp


@dataclass
class Arg:
    name: str | None  # None: positional
    value: Expr
    span: Span


@dataclass
class Call:
    """A layer (``conv(64, 3)``, ``relu``) or a block call (``inception(64, ...)``)."""

    name: str
    args: list[Arg]
    span: Span


@dataclass
class Ref:
    """``@name``: the tensor a label names."""

    name: str
    span: Span


@dataclass
class Chain:
    items: list[Item]


@dataclass
class Merge:
    """``concat { ... }`` / ``add { ... }``: one branch per chain, all from the same input."""

    kind: str
    branches: list[Chain]
    span: Span


@dataclass
class Group:
    """``{ ... }``: chains that continue one another."""

    chains: list[Chain]
    span: Span


@dataclass
class Repeat:
    count: Expr
    body: Group
    span: Span


Element = Call | Ref | Merge | Group | Repeat


@dataclass
class Item:
    label: str | None
    element: Element
    label_span: Span | None


@dataclass
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass
class BlockDef:
    name: str
    params: list[Param]
    body: Chain
    span: Span


@dataclass
class NetworkDecl:
    name: str
    span: Span


@dataclass
class InputDecl:
    shape: tuple[int, ...]
    span: Span


@dataclass
class OutputDecl:
    ref: Ref


@dataclass
class Expect:
    """``expect QUANTITY = VALUE [@layer/path]``: a published number to check, e.g. ``expect params = 138M``."""

    quantity: str
    value: str  # as written: 138M, 34,848, 55x55x96
    layer: str | None  # a layer name or block path; None: the whole network
    span: Span  # the quantity
    value_span: Span
    layer_span: Span | None


Statement = NetworkDecl | InputDecl | OutputDecl | BlockDef | Expect | Chain


@dataclass
class Program:
    statements: list[Statement]
