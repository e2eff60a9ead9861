"""The catalogue of operations: what each layer kind is called, which attributes it takes
(positionally and by keyword), their defaults and types, and the parameters it owns.

This module is the single place that knows the vocabulary of the ``.cnn`` language; the
builder validates calls against it and every later stage reads :class:`Op` records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROUNDING = ("floor", "ceil", "strict")


@dataclass(frozen=True)
class Attr:
    """One attribute of a layer kind."""

    name: str
    type: str  # "int", "float", "bool", "pad", "round"
    default: Any = None  # None: required
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Kind:
    """A layer kind: its attributes in positional order and a one-line description."""

    name: str
    attrs: tuple[Attr, ...]
    doc: str
    aliases: tuple[str, ...] = ()
    merge: bool = False  # concat/add: written as `kind { branch ... }`
    in_place: bool = False  # allocates no new activation memory (see cost.py)

    def attr(self, name: str) -> Attr | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None


_POOL = (
    Attr("kernel", "int", doc="window size (square)"),
    Attr("stride", "int", 0, "step; defaults to the kernel size"),
    Attr("pad", "pad", 0, "zero/ignored padding on each side, or `same`"),
    Attr("round", "round", "floor", "output size rounding: floor, ceil (Caffe) or strict"),
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("input", (), "the network's input tensor"),
        Kind(
            "conv",
            (
                Attr("filters", "int", doc="output channels"),
                Attr("kernel", "int", doc="kernel size (square)"),
                Attr("stride", "int", 1),
                Attr("pad", "pad", 0, "padding on each side, or `same` (odd kernel, stride 1)"),
                Attr("groups", "int", 1, "grouped convolution (AlexNet's two GPUs)"),
                Attr("bias", "bool", True),
                Attr("round", "round", "floor", "output size rounding: floor, ceil or strict"),
            ),
            "2-D convolution, weights (filters, in/groups, kernel, kernel)",
        ),
        Kind("maxpool", _POOL, "max pooling; padded cells never win"),
        Kind(
            "avgpool",
            _POOL + (Attr("count_pad", "bool", True, "padded cells count in the divisor (Caffe, PyTorch)"),),
            "average pooling",
        ),
        Kind("gap", (), "global average pooling to Cx1x1", aliases=("globalavgpool",)),
        Kind(
            "lrn",
            (
                Attr("size", "int", 5, "channels in the window"),
                Attr("alpha", "float", 1e-4, "scale (divided by size, Caffe/PyTorch convention)"),
                Attr("beta", "float", 0.75, "exponent"),
                Attr("k", "float", 1.0, "additive constant"),
            ),
            "local response normalisation across channels",
        ),
        Kind("relu", (), "rectified linear unit", in_place=True),
        Kind("relu6", (), "ReLU capped at 6, min(max(x, 0), 6) (MobileNet; ONNX Clip(0, 6))", in_place=True),
        Kind(
            "fc",
            (Attr("out", "int", doc="output features"), Attr("bias", "bool", True)),
            "fully connected layer on the input flattened in C,H,W order, weights (out, in)",
            aliases=("linear",),
        ),
        Kind("flatten", (), "reshape CxHxW to C*H*W (a view)", in_place=True),
        Kind("dropout", (Attr("p", "float", 0.5, "drop probability at training time"),),
             "identity at inference", in_place=True),
        Kind("softmax", (), "softmax over channels", in_place=True),
        Kind("batchnorm", (Attr("eps", "float", 1e-5),), "batch normalisation (inference)",
             aliases=("bn",)),
        Kind("concat", (), "concatenate branches along channels", merge=True),
        Kind("add", (), "element-wise sum of branches", merge=True),
    )
}

ALIASES: dict[str, str] = {alias: k.name for k in KINDS.values() for alias in k.aliases}


def canonical_kind(name: str) -> str | None:
    """The canonical kind for a name or alias, or None."""
    if name in KINDS:
        return name
    return ALIASES.get(name)


@dataclass(frozen=True)
class Op:
    """An operation: a kind and its fully resolved attributes (every default filled in).

    Treat it as immutable; :meth:`replace` returns a changed copy.
    """

    kind: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.attrs[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def replace(self, **changes: Any) -> Op:
        return Op(self.kind, {**self.attrs, **changes})

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.attrs.items())
        return f"{self.kind}({args})" if args else self.kind


def make_op(kind: str, **attrs: Any) -> Op:
    """Build an op with defaults filled in (for programmatic construction and tests).

    Raises KeyError/TypeError for unknown kinds or attributes; the language front end
    validates user input itself and reports source locations.
    """
    spec = KINDS[canonical_kind(kind) or kind]
    resolved: dict[str, Any] = {}
    for a in spec.attrs:
        if a.name in attrs:
            resolved[a.name] = attrs.pop(a.name)
        elif a.required:
            raise TypeError(f"{spec.name}: missing attribute {a.name!r}")
        else:
            resolved[a.name] = a.default
    if attrs:
        raise TypeError(f"{spec.name}: unknown attributes {sorted(attrs)}")
    if spec.name in ("maxpool", "avgpool") and not resolved["stride"]:
        resolved["stride"] = resolved["kernel"]
    # extra, pass-produced attributes are allowed through Op.replace, not here
    return Op(spec.name, resolved)


def param_shapes(op: Op, in_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The parameters an op owns, as (suffix, shape) in PyTorch layout and order.

    conv: weight (out, in/groups, k, k), bias (out,); fc: weight (out, in), bias (out,);
    batchnorm: weight, bias, running_mean, running_var, each (C,).
    """
    if op.kind == "conv":
        cin = in_shape[0]
        out: list[tuple[str, tuple[int, ...]]] = [
            ("weight", (op["filters"], cin // op["groups"], op["kernel"], op["kernel"]))
        ]
        if op["bias"]:
            out.append(("bias", (op["filters"],)))
        return out
    if op.kind == "fc":
        n_in = 1
        for d in in_shape:
            n_in *= d
        out = [("weight", (op["out"], n_in))]
        if op["bias"]:
            out.append(("bias", (op["out"],)))
        return out
    if op.kind == "batchnorm":
        c = (in_shape[0],)
        return [("weight", c), ("bias", c), ("running_mean", c), ("running_var", c)]
    return []


def describe(op: Op) -> str:
    """A short human description of an op for comments: ``conv 3x3/2 +relu`` (``+residual``: a fused add)."""
    k = op.kind
    act = " +relu" if op.get("act") == "relu" else ""
    if k == "conv":
        s = f"conv {op['kernel']}x{op['kernel']}"
        if op["stride"] != 1:
            s += f"/{op['stride']}"
        if op["groups"] != 1:
            s += f" groups={op['groups']}"
        if op.get("parts") and len(op["parts"]) > 1:
            s += f" (fused {len(op['parts'])})"
        if op.get("residual"):
            s += " +residual"
        return s + act
    if k in ("maxpool", "avgpool"):
        s = f"{k} {op['kernel']}x{op['kernel']}/{op['stride']}"
        if op.get("round") == "ceil":
            s += " ceil"
        return s
    if k == "fc":
        return f"fc {op['out']}" + act
    if k == "slice":
        return f"slice [{op['start']}:{op['stop']})"
    return k + act
