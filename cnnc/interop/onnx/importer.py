"""ONNX model -> cnnc graph and parameters.

:func:`read_model` loads and checks a file (weights inline or as external data beside it);
:func:`to_graph` maps its nodes onto cnnc layers (:data:`.ops.IMPORTED`) and builds the cnnc graph
with :func:`cnnc.graph.add_node`, so every shape is re-inferred by cnnc. Nothing from the file
becomes code: layer names are rewritten into ``.cnn`` identifiers (:func:`identifier`), attributes
are read as numbers, and weights as arrays with ``onnx.numpy_helper``.

Everything the importer cannot take is reported together in one :class:`OnnxImportError`: each
unsupported op type with its count and first node, non-constant weights, batch-dependent shapes.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ...cost import op_cost
from ...errors import CnncError, ShapeError, read_file
from ...frontend import keywords
from ...graph import INPUT, add_node, new_graph
from ...ops import Op, make_op
from ...shapes import window_out
from . import require_onnx
from .ops import IMPORTED

#: words a label must not be: the grammar's keywords (a layer kind or a value word is a valid label: `fc: fc(10)`)
RESERVED = keywords()
MAX_NAME = 64


class OnnxImportError(CnncError):
    """An ONNX file cnnc cannot import (the message lists every reason)."""


def identifier(text: str) -> str:
    """``text`` made a valid ``.cnn`` identifier: other characters become ``_``, never a keyword."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_")
    s = re.sub(r"_+", "_", s)[:MAX_NAME] or "layer"
    if s[0].isdigit():
        s = "n" + s
    if s in RESERVED:
        s += "_"
    return s


def read_model(path: str | os.PathLike) -> Any:
    """The checked ``ModelProto`` in ``path``, external data loaded; an :class:`OnnxImportError` otherwise."""
    onnx = require_onnx()
    from google.protobuf.message import DecodeError

    path = Path(path)
    head = read_file(path, OnnxImportError, "an ONNX model", limit=1)
    if not head:
        raise OnnxImportError(f"{path}: is empty, not an ONNX model")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise OnnxImportError(f"{path}: is not an ONNX model, or it is truncated or corrupt ({e})") from None
    if not model.graph.node and not model.graph.input:
        raise OnnxImportError(f"{path}: is not an ONNX model (no graph in it)")
    try:
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data

        if any(uses_external_data(t) for t in model.graph.initializer):
            load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        raise OnnxImportError(f"{path}: its external weight data cannot be read ({e})") from None
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{path}: is not a valid ONNX model, or it is truncated or corrupt: {first}") from None
    return model


@dataclass
class _Pending:
    """A zero Pad waiting to be folded into the conv or avgpool that consumes it."""

    source: str
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    node: str


@dataclass
class _State:
    g: nx.DiGraph
    consts: dict[str, np.ndarray]
    value: dict[str, str | _Pending] = field(default_factory=dict)  # ONNX tensor -> cnnc node (or a pad)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    uses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    doc: dict[str, str] = field(default_factory=dict)  # cnnc node -> the ONNX node it came from


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, float) and not np.isfinite(v):
            raise _Refuse(f"attribute {a.name} is {v}")
        # ONNX stores float attributes in float32: keep the shortest decimal that rounds to it (1e-4, not
        # 9.999999747378752e-05), so the .cnn reads as the model's author wrote it
        out[a.name] = float(np.format_float_positional(np.float32(v), unique=True, trim="-")) \
            if isinstance(v, float) else v
    return out


def _label(node: Any) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _short(name: str) -> str:
    """A node name without the scope prefixes torch repeats: ``/layers/layers.0/Add`` -> ``layers.0/Add``,
    ``/0/Conv`` -> ``conv_0``."""
    parts = [p for p in name.split("/") if p]
    keep = [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    short = "/".join(keep) or name
    m = re.fullmatch(r"(\d+)/([A-Za-z]\w*)", short)  # a torch Sequential's "/0/Conv" -> "conv_0"
    return f"{m.group(2).lower()}_{m.group(1)}" if m else short


def _data_slots(node: Any, consts: dict[str, np.ndarray]) -> list[int]:
    """Input positions that carry activations (the rest are weights, shapes or options)."""
    if node.op_type in ("Concat", "Sum", "Add", "MatMul"):
        return [i for i, t in enumerate(node.input) if t and t not in consts]
    if node.op_type in IMPORTED:
        return [0]
    return [i for i, t in enumerate(node.input) if t and t not in consts]


def to_graph(model: Any, name: str = "network") -> tuple[nx.DiGraph, dict[str, np.ndarray], dict[str, str]]:
    """The cnnc graph of ``model``, its parameters (named ``<node>.<suffix>``, float32) and, per cnnc
    node, the ONNX node it came from."""
    onnx = require_onnx()
    from onnx import numpy_helper

    graph = model.graph
    consts: dict[str, np.ndarray] = {}
    for t in graph.initializer:
        consts[t.name] = numpy_helper.to_array(t)
    for n in graph.node:  # in topological order: an Identity of a constant (torch writes some) is one too
        if n.op_type == "Identity" and n.input and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]]
        if n.op_type == "Constant" and n.output:
            from onnx import helper

            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            if "value" in a:
                consts[n.output[0]] = numpy_helper.to_array(a["value"])
            elif "value_float" in a or "value_int" in a:
                consts[n.output[0]] = np.array(a.get("value_float", a.get("value_int")))
            elif "value_floats" in a or "value_ints" in a:
                consts[n.output[0]] = np.array(a.get("value_floats", a.get("value_ints")))
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxImportError(f"cnnc networks have one input and one output; this model has {len(inputs)} "
                              f"input(s) and {len(graph.output)} output(s)")
    inp = inputs[0]
    from onnx import TensorProto

    if inp.type.tensor_type.elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
        kind = TensorProto.DataType.Name(inp.type.tensor_type.elem_type) if inp.type.HasField("tensor_type") \
            else "not a tensor"
        raise OnnxImportError(f"input {inp.name!r} is {kind}; cnnc networks take floating-point images")
    dims = inp.type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if len(shape) not in (2, 4) or any(d is None or d <= 0 for d in shape[1:]):
        shown = "x".join("?" if d is None else str(d) for d in shape) or "unknown"
        raise OnnxImportError(f"input {inp.name!r} has shape {shown}; cnnc needs (N, C, H, W) or (N, F) with fixed "
                              "C, H, W (any batch N)")
    # shape inference: sizes of tensors whose shape is computed (Reshape from Shape/Gather)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        ranks = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    except Exception:  # noqa: BLE001 - inference is optional help; a failure just leaves sizes unknown
        ranks = {}
    producers = {o: n for n in graph.node for o in n.output}
    seen: set[int] = set()
    stack = [graph.output[0].name]
    while stack:
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in seen or t in consts:
            continue
        seen.add(id(n))
        for i in _data_slots(n, consts):
            stack.append(n.input[i])
    order = [n for n in graph.node if id(n) in seen]
    unsupported: dict[str, list[str]] = {}
    for n in order:
        if n.op_type not in IMPORTED or (n.domain not in ("", "ai.onnx")):
            unsupported.setdefault(n.op_type if not n.domain else f"{n.domain}.{n.op_type}", []).append(_label(n))
    if unsupported:
        lines = [f"{op} ({len(ns)} node{'s' if len(ns) != 1 else ''}, first {ns[0]!r})"
                 for op, ns in sorted(unsupported.items())]
        raise OnnxImportError("unsupported ONNX operators: " + "; ".join(lines)
                              + f". cnnc imports: {', '.join(sorted(IMPORTED))}")
    g = new_graph(identifier(name), tuple(int(d) for d in shape[1:]))
    g.graph["onnx_opset"] = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    st = _State(g, consts)
    st.value[inp.name] = INPUT
    st.names.add(INPUT)
    for n in order:
        for i in _data_slots(n, consts):
            st.uses[n.input[i]] += 1
    failed: set[str] = set()  # outputs of refused nodes: their consumers are not reported again
    for n in order:
        if any(n.input[i] in failed for i in _data_slots(n, consts)):
            failed.update(n.output)
            continue
        try:
            CONVERTERS[n.op_type](st, n, _attrs(n), ranks)
        except _Refuse as e:
            st.problems.append(f"node {_label(n)!r} ({n.op_type}): {e}")
            failed.update(n.output)
        except ShapeError as e:
            st.problems.append(f"node {_label(n)!r} ({n.op_type}): {e.message}")
            failed.update(n.output)
        except (IndexError, KeyError, TypeError, ValueError) as e:  # a node missing inputs or attributes
            st.problems.append(f"node {_label(n)!r} ({n.op_type}): malformed ({type(e).__name__}: {e})")
            failed.update(n.output)
    out = st.value.get(graph.output[0].name)
    if isinstance(out, _Pending):
        st.problems.append(f"node {out.node!r} (Pad): its output is the model's output; nothing to fold it into")
    if st.problems:
        raise OnnxImportError(f"cannot import this model ({len(st.problems)} problem"
                              f"{'s' if len(st.problems) != 1 else ''}):\n"
                              + "\n".join(f"  - {p}" for p in st.problems))
    if out is None:
        raise OnnxImportError("the model's output is not computed from its input")
    g.graph["output"] = out
    return g, st.params, st.doc


class _Refuse(Exception):
    """One node cannot be imported (collected into the OnnxImportError)."""


def _src(st: _State, t: str) -> str:
    v = st.value.get(t)
    if v is None:
        if t in st.consts:
            raise _Refuse(f"input {t!r} is a constant where an activation was expected")
        raise _Refuse(f"input {t!r} is not computed from the model's input")
    if isinstance(v, _Pending):
        raise _Refuse(f"takes the output of Pad {v.node!r}, which only a Conv or AveragePool can absorb")
    return v


def _const(st: _State, node: Any, i: int, what: str) -> np.ndarray | None:
    if i >= len(node.input) or not node.input[i]:
        return None
    t = node.input[i]
    if t not in st.consts:
        raise _Refuse(f"the {what} {t!r} is not a constant (non-constant weights are not supported)")
    return st.consts[t]


def _unique(st: _State, base: str) -> str:
    name, i = base, 1
    while name in st.names:
        i += 1
        name = f"{base}_{i}"
    st.names.add(name)
    return name


def _add(st: _State, node: Any, op: Op, inputs: list[str], params: dict[str, np.ndarray] | None = None) -> str:
    name = _unique(st, identifier(_short(_label(node))))
    add_node(st.g, name, op, inputs)
    for suffix, a in (params or {}).items():
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.floating):
            raise _Refuse(f"the {suffix} is {a.dtype}, expected floating point")
        st.params[f"{name}.{suffix}"] = np.ascontiguousarray(a, dtype=np.float32)
    st.value[node.output[0]] = name
    st.doc[name] = _label(node)
    return name


def _shape(st: _State, n: str) -> tuple[int, ...]:
    return tuple(st.g.nodes[n]["shape"])


def _window(st: _State, node: Any, a: dict[str, Any], src_shape: tuple[int, ...], extra: tuple[int, ...],
            ceil: bool) -> dict[str, Any]:
    """kernel/stride/pad/round of a Conv or pool (``extra``: a folded Pad's top, left, bottom, right)."""
    if len(src_shape) != 3:
        raise _Refuse("needs a CxHxW input")
    ks = [int(k) for k in a.get("kernel_shape", [])]
    if not ks and node.op_type == "Conv":
        w = st.consts.get(node.input[1])
        ks = list(w.shape[2:]) if w is not None else []
    if len(ks) != 2 or ks[0] != ks[1]:
        raise _Refuse(f"kernel {ks}: cnnc supports square 2-D kernels")
    k = ks[0]
    strides = [int(s) for s in a.get("strides", [1, 1])]
    if len(set(strides)) != 1 or strides[0] < 1:
        raise _Refuse(f"strides {strides}: cnnc supports equal positive strides")
    s = strides[0]
    if k < 1:
        raise _Refuse(f"kernel {ks}")
    if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
        raise _Refuse(f"dilations {list(a['dilations'])}: cnnc has no dilated windows")
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        raise _Refuse(f"pads {pads}: four non-negative pads expected")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if s != 1 or k % 2 == 0:
            raise _Refuse(f"auto_pad={auto} with kernel {k}, stride {s}: only odd kernels at stride 1")
        pads = [k // 2] * 4
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    elif auto != "NOTSET":
        raise _Refuse(f"auto_pad={auto}")
    t, left, b, r = (pads[0] + extra[0], pads[1] + extra[1], pads[2] + extra[2], pads[3] + extra[3])
    if t != left:
        raise _Refuse(f"pads {pads}: cnnc pads height and width alike")
    # the output size ONNX gives each axis; extra bottom/right padding (b, r > t) that only completes
    # a last window is cnnc's round=ceil (the extra cells are zeros or ignored, as in ONNX)
    if ceil and b == t and r == t:
        # ceil_mode with symmetric pads: PyTorch's rule (a last window starting in the padding is dropped),
        # which torch.onnx writes and ONNX Runtime computes; cnnc's round=ceil is the same rule
        return {"kernel": k, "stride": s, "pad": t, "round": "ceil"}
    want = []
    for n, end in zip(src_shape[1:], (b, r), strict=True):
        if end < t or (ceil and end != t) or n + t + end < k:
            raise _Refuse(f"pads {pads}: asymmetric padding")
        want.append(-(-(n + t + end - k) // s) + 1 if ceil else (n + t + end - k) // s + 1)
    for rounding in ("floor", "ceil"):
        if [window_out(n, k, s, t, rounding) for n in src_shape[1:]] == want:
            return {"kernel": k, "stride": s, "pad": t, "round": rounding}
    raise _Refuse(f"pads {pads}, ceil_mode={int(ceil)}: an output size cnnc's rounding rules do not give "
                  "(a last window starting in the padding)")


def _take_pad(st: _State, node: Any, allowed: bool) -> tuple[str, tuple[int, int, int, int]]:
    v = st.value.get(node.input[0])
    if isinstance(v, _Pending):
        if not allowed:
            raise _Refuse(f"takes the output of Pad {v.node!r}; zero padding folds only into Conv and "
                          "AveragePool(count_include_pad=1)")
        if st.uses[node.input[0]] != 1:
            raise _Refuse(f"Pad {v.node!r} feeds more than one node")
        return v.source, v.pads
    return _src(st, node.input[0]), (0, 0, 0, 0)


def _conv(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    src, extra = _take_pad(st, node, True)
    w = _const(st, node, 1, "weight")
    b = _const(st, node, 2, "bias")
    if w is None:
        raise _Refuse("no weight input")
    if w.ndim != 4:
        raise _Refuse(f"weight of shape {w.shape}: cnnc supports 2-D convolutions")
    win = _window(st, node, a, _shape(st, src), extra, False)
    groups = int(a.get("group", 1))
    if groups < 1 or w.shape[1] * groups != _shape(st, src)[0]:
        raise _Refuse(f"group {groups} with a weight of shape {w.shape} on {_shape(st, src)[0]} channels")
    op = make_op("conv", filters=int(w.shape[0]), groups=groups, bias=b is not None, **win)
    params = {"weight": w} | ({"bias": b.reshape(-1)} if b is not None else {})
    _add(st, node, op, [src], params)


def _pool(kind: str) -> Callable[[_State, Any, dict[str, Any], dict], None]:
    def convert(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
        count_pad = bool(a.get("count_include_pad", 0))
        src, extra = _take_pad(st, node, kind == "avgpool" and count_pad)
        if int(a.get("storage_order", 0)) != 0 or len(node.output) > 1 and node.output[1]:
            raise _Refuse("MaxPool indices output is not supported")
        pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        if kind == "avgpool" and count_pad and (pads[2] + extra[2] != pads[0] + extra[0]
                                                or pads[3] + extra[3] != pads[1] + extra[1]):
            raise _Refuse(f"pads {pads}: asymmetric padding counted in the average")
        win = _window(st, node, a, _shape(st, src), extra, bool(a.get("ceil_mode", 0)))
        if win["pad"] * 2 > win["kernel"]:
            raise _Refuse(f"padding {win['pad']} exceeds half the kernel {win['kernel']}")
        attrs = win | ({"count_pad": count_pad} if kind == "avgpool" else {})
        _add(st, node, make_op(kind, **attrs), [src])

    return convert


def _simple(kind: str, **fixed: Any) -> Callable[[_State, Any, dict[str, Any], dict], None]:
    def convert(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
        _add(st, node, make_op(kind, **fixed), [_src(st, node.input[0])])

    return convert


def _alias(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    st.value[node.output[0]] = _src(st, node.input[0])


def _lrn(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    size = int(a["size"])
    if size < 1:
        raise _Refuse(f"size {size}")
    if size % 2 == 0:
        raise _Refuse(f"size {size}: ONNX centres an even window differently from cnnc; only odd sizes")
    op = make_op("lrn", size=size, alpha=float(a.get("alpha", 1e-4)), beta=float(a.get("beta", 0.75)),
                 k=float(a.get("bias", 1.0)))
    _add(st, node, op, [_src(st, node.input[0])])


def _batchnorm(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    if int(a.get("training_mode", 0)):
        raise _Refuse("training_mode=1")
    src = _src(st, node.input[0])
    ps = {s: _const(st, node, i, s) for i, s in enumerate(("weight", "bias", "running_mean", "running_var"), 1)}
    _add(st, node, make_op("batchnorm", eps=float(a.get("epsilon", 1e-5))), [src],
         {k: v.reshape(-1) for k, v in ps.items() if v is not None})


def _gemm(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    if int(a.get("transA", 0)):
        raise _Refuse("transA=1")
    src = _src(st, node.input[0])
    w = _const(st, node, 1, "weight")
    c = _const(st, node, 2, "bias")
    if w is None:
        raise _Refuse("no weight input")
    if w.ndim != 2:
        raise _Refuse(f"weight of shape {w.shape}")
    w = w if int(a.get("transB", 0)) else w.T
    w = w * float(a.get("alpha", 1.0))
    params = {"weight": w}
    if c is not None:
        c = np.broadcast_to(c, (1, w.shape[0])).reshape(-1) * float(a.get("beta", 1.0))
        params["bias"] = c
    _add(st, node, make_op("fc", out=int(w.shape[0]), bias=c is not None), [src], params)


def _matmul(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    if node.input[0] in st.consts or node.input[1] not in st.consts:
        raise _Refuse("only activation @ constant matrix is supported")
    w = st.consts[node.input[1]]
    src = _src(st, node.input[0])
    if w.ndim != 2 or len(_shape(st, src)) != 1:
        raise _Refuse(f"a matrix product of {_shape(st, src)} and {w.shape}: cnnc's fc takes a flat input")
    _add(st, node, make_op("fc", out=int(w.shape[1]), bias=False), [src], {"weight": w.T})


def _add_op(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    data = [t for t in node.input if t not in st.consts]
    if len(data) == 2 or node.op_type == "Sum":
        _add(st, node, Op("add", {}), [_src(st, t) for t in data])
        return
    if len(data) != 1:
        raise _Refuse("adds constants only")
    src = _src(st, data[0])
    bias = st.consts[next(t for t in node.input if t in st.consts)]
    d = st.g.nodes[src]
    if d["op"].kind == "fc" and not d["op"]["bias"] and st.uses[data[0]] == 1:
        out = d["op"]["out"]
        try:
            b = np.broadcast_to(bias, (1, out)).reshape(-1)
        except ValueError:
            raise _Refuse(f"bias of shape {bias.shape} for {out} features") from None
        d["op"] = d["op"].replace(bias=True)
        d["cost"] = op_cost(d["op"], [st.g.nodes[i]["shape"] for i in d["inputs"]], d["shape"])
        st.params[f"{src}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
        st.value[node.output[0]] = src
        return
    raise _Refuse("adding a constant is supported only as the bias of a MatMul")


def _reduce_mean(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    src = _src(st, node.input[0])
    axes_in = _const(st, node, 1, "axes") if len(node.input) > 1 and node.input[1] else a.get("axes")
    axes = sorted(int(v) % 4 for v in np.asarray(axes_in).reshape(-1)) if axes_in is not None else []
    if len(_shape(st, src)) != 3 or axes != [2, 3]:
        raise _Refuse(f"axes {axes}: only the mean over height and width (a global average pool)")
    name = _add(st, node, make_op("gap"), [src])
    if not int(a.get("keepdims", 1)):
        flat = _unique(st, f"{name}_flat")
        add_node(st.g, flat, make_op("flatten"), [name])
        st.value[node.output[0]] = flat
        st.doc[flat] = _label(node)


def _flatten(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    if int(a.get("axis", 1)) != 1:
        raise _Refuse(f"axis={a['axis']}: only axis 1 (keep the batch) is supported")
    src = _src(st, node.input[0])
    if len(_shape(st, src)) == 1:
        st.value[node.output[0]] = src
        return
    _add(st, node, make_op("flatten"), [src])


def _reshape(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    src = _src(st, node.input[0])
    size = prod(_shape(st, src))
    target = st.consts.get(node.input[1])
    if target is not None:
        t = [int(v) for v in np.asarray(target).reshape(-1)]
        if len(t) == 2 and t[0] > 0:
            raise _Refuse(f"shape {t} fixes the batch size ({t[0]}): a batch-dependent shape")
        ok = len(t) == 2 and t[0] in (0, -1) and t[1] in (-1, size)
    else:
        v = ranks.get(node.output[0])
        dims = v.type.tensor_type.shape.dim if v is not None else []
        ok = len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value == size
        t = "computed"
    if not ok:
        raise _Refuse(f"shape {t}: only a reshape that flattens each image (N, -1) is supported")
    if len(_shape(st, src)) == 1:
        st.value[node.output[0]] = src
        return
    _add(st, node, make_op("flatten"), [src])


def _concat(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    srcs = [_src(st, t) for t in node.input]
    rank = len(_shape(st, srcs[0])) + 1
    axis = int(a.get("axis", 1))
    if axis not in (1, 1 - rank):
        raise _Refuse(f"axis={axis}: only the channel axis (1)")
    _add(st, node, Op("concat", {}), srcs)


def _softmax(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    src = _src(st, node.input[0])
    rank = len(_shape(st, src)) + 1
    axis = int(a.get("axis", -1 if _opset(st) >= 13 else 1))
    if axis < 0:
        axis += rank
    if axis != 1 or (rank != 2 and _opset(st) < 13):
        raise _Refuse(f"axis={a.get('axis')}: only a softmax over channels")
    _add(st, node, make_op("softmax"), [src])


def _opset(st: _State) -> int:
    return int(st.g.graph.get("onnx_opset", 17))


def _dropout(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    ratio = _const(st, node, 1, "ratio") if len(node.input) > 1 and node.input[1] else None
    p = float(np.format_float_positional(np.float32(np.asarray(ratio).reshape(-1)[0]), unique=True, trim="-")) \
        if ratio is not None else float(a.get("ratio", 0.5))
    if len(node.input) > 2 and node.input[2]:
        mode = _const(st, node, 2, "training_mode")
        if mode is not None and bool(np.asarray(mode).reshape(-1)[0]):
            raise _Refuse("training_mode=true")
    if not 0 <= p < 1:
        raise _Refuse(f"ratio {p}")
    _add(st, node, make_op("dropout", p=p), [_src(st, node.input[0])])


def _clip(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    lo = _const(st, node, 1, "min") if len(node.input) > 1 and node.input[1] else a.get("min")
    hi = _const(st, node, 2, "max") if len(node.input) > 2 and node.input[2] else a.get("max")
    lo_v = None if lo is None else float(np.asarray(lo).reshape(-1)[0])
    hi_v = None if hi is None else float(np.asarray(hi).reshape(-1)[0])
    if lo_v == 0.0 and (hi_v is None or hi_v == float("inf") or hi_v >= 3.4e38):
        _add(st, node, make_op("relu"), [_src(st, node.input[0])])
        return
    if lo_v == 0.0 and hi_v == 6.0:
        _add(st, node, make_op("relu6"), [_src(st, node.input[0])])
        return
    raise _Refuse(f"Clip({lo_v}, {hi_v}): only Clip(0, 6) (relu6) and Clip(0, none) (relu) are supported")


def _pad(st: _State, node: Any, a: dict[str, Any], ranks: dict) -> None:
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        raise _Refuse(f"mode={mode}: only constant zero padding folds into a conv or pool")
    pads = _const(st, node, 1, "pads") if len(node.input) > 1 and node.input[1] else np.array(a.get("pads", []))
    value = _const(st, node, 2, "value") if len(node.input) > 2 and node.input[2] else None
    if value is not None and float(np.asarray(value).reshape(-1)[0]) != 0.0:
        raise _Refuse("a non-zero pad value")
    if len(node.input) > 3 and node.input[3]:
        raise _Refuse("the axes input of Pad is not supported")
    p = [int(v) for v in np.asarray(pads).reshape(-1)]
    if len(p) != 8 or p[0] or p[1] or p[4] or p[5] or min(p) < 0:
        raise _Refuse(f"pads {p}: only non-negative padding of height and width")
    st.value[node.output[0]] = _Pending(_src(st, node.input[0]), (p[2], p[3], p[6], p[7]), _label(node))


CONVERTERS: dict[str, Callable[[_State, Any, dict[str, Any], dict], None]] = {
    "Conv": _conv,
    "MaxPool": _pool("maxpool"),
    "AveragePool": _pool("avgpool"),
    "GlobalAveragePool": _simple("gap"),
    "ReduceMean": _reduce_mean,
    "LRN": _lrn,
    "BatchNormalization": _batchnorm,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add_op,
    "Sum": _add_op,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Concat": _concat,
    "Relu": _simple("relu"),
    "Clip": _clip,
    "Softmax": _softmax,
    "Dropout": _dropout,
    "Identity": _alias,
    "Pad": _pad,
    "Constant": lambda st, node, a, ranks: None,
}
