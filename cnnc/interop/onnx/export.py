"""cnnc graph -> ONNX model (opset :data:`OPSET`), built with ``onnx.helper`` only.

* One ONNX node per cnnc layer, named after it; its output tensor carries the same name, so
  Netron and ONNX Runtime show cnnc's layer names. ``doc_string`` is the layer's ``file:line:col``.
* Weights are initializers named like cnnc's parameters (``conv1.weight``); a graph optimised by
  passes exports its effective weights (a folded batchnorm is folded in the ONNX file too).
* The input is ``input`` of shape ``(N, C, H, W)`` with a symbolic batch ``N``; the output is the
  output layer's tensor.

The model passes ``onnx.checker.check_model(full_check=True)`` (checked before it is returned).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ...errors import CnncError
from ...graph import ordered
from ...passes.params import effective_params
from ...runtime.reference import _window_geometry
from ...shapes import window_out
from . import require_onnx

OPSET = 17
#: ONNX IR version written: the newest that ONNX Runtime 1.18+ reads (opset 17 needs IR >= 8)
IR_VERSION = 8
BATCH = "N"


class ExportError(CnncError):
    """A cnnc graph has something ONNX cannot express exactly."""


def _ints(*v: int) -> list[int]:
    return [int(x) for x in v]


def _window_attrs(op: Any, in_shape: tuple[int, ...], with_ceil: bool) -> dict[str, Any]:
    """kernel_shape/strides/pads (and ceil_mode for pools) of a conv or pool over ``in_shape``."""
    k, s = op["kernel"], op["stride"]
    _, ph0, ph1 = _window_geometry(in_shape[1], op)
    _, pw0, pw1 = _window_geometry(in_shape[2], op)
    attrs: dict[str, Any] = {"kernel_shape": _ints(k, k), "strides": _ints(s, s)}
    extra = ph1 != ph0 or pw1 != pw0  # ceil rounding added a last window
    if with_ceil and extra and op.kind == "avgpool" and op["count_pad"]:
        # the divisor counts padding only up to the padded input: ONNX's ceil_mode, as PyTorch's
        attrs["pads"] = _ints(ph0, pw0, ph0, pw0)
        attrs["ceil_mode"] = 1
    else:
        # explicit bottom/right padding for the extra window: conv pads zeros, MaxPool never picks a
        # pad, AveragePool(count_include_pad=0) does not count it; floor rounding then gives cnnc's size
        attrs["pads"] = _ints(ph0, pw0, ph1, pw1)
        if with_ceil:
            # keep round=ceil visible where ONNX's ceil formula gives cnnc's size (it lacks the rule that
            # drops a last window starting in the padding)
            same = all(-(-(n + 2 * p - k) // s) + 1 == window_out(n, k, s, p, "ceil")
                       for n, p in ((in_shape[1], ph0), (in_shape[2], pw0)))
            attrs["ceil_mode"] = int(op["round"] == "ceil" and not extra and same)
    return attrs


def _doc(d: Mapping[str, Any]) -> str:
    span = d.get("span")
    return str(span) if span is not None else ""


def to_onnx(g: nx.DiGraph, params: Mapping[str, np.ndarray]) -> Any:
    """The ONNX ``ModelProto`` of ``g`` with ``params`` (validated cnnc parameters) as initializers."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    weights = effective_params(g, params, np.dtype(np.float32))
    nodes: list[Any] = []
    inits: list[Any] = []

    def init(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.array(a, order="C"), name))
        return name

    def node(op_type: str, inputs: list[str], output: str, name: str, doc: str, **attrs: Any) -> None:
        nodes.append(helper.make_node(op_type, inputs, [output], name=name, doc_string=doc, **attrs))

    out_name = g.graph["output"]
    for n in ordered(g):
        d = g.nodes[n]
        op = d["op"]
        k = op.kind
        ins = list(d["inputs"])
        doc = _doc(d)
        in_shape = tuple(g.nodes[ins[0]]["shape"]) if ins else ()
        act = op.get("act")
        y = f"{n}/pre_act" if act else n
        if k == "input":
            continue
        if k == "conv":
            w, b = weights[n]
            args = [ins[0], init(f"{n}.weight", w)] + ([init(f"{n}.bias", b)] if b is not None else [])
            conv_out = f"{n}/conv" if op.get("residual") else y
            node("Conv", args, conv_out, n, doc, group=int(op["groups"]), dilations=[1, 1],
                 **_window_attrs(op, in_shape, with_ceil=False))
            if op.get("residual"):
                node("Add", [conv_out, ins[1]], y, f"{n}/residual", doc)
        elif k == "fc":
            w, b = weights[n]
            x = ins[0]
            if len(in_shape) != 1:
                x = f"{n}/flatten"
                node("Flatten", [ins[0]], x, x, doc, axis=1)
            args = [x, init(f"{n}.weight", w)] + ([init(f"{n}.bias", b)] if b is not None else [])
            node("Gemm", args, y, n, doc, transB=1)
        elif k == "maxpool":
            node("MaxPool", ins, y, n, doc, **_window_attrs(op, in_shape, with_ceil=True))
        elif k == "avgpool":
            node("AveragePool", ins, y, n, doc, count_include_pad=int(bool(op["count_pad"])),
                 **_window_attrs(op, in_shape, with_ceil=True))
        elif k == "gap":
            node("GlobalAveragePool", ins, y, n, doc)
        elif k == "lrn":
            if op["size"] % 2 == 0:
                # ONNX centres an even window one channel later than cnnc/PyTorch/Caffe
                raise ExportError(f"layer {n!r}: lrn with an even size ({op['size']}) has no exact ONNX LRN "
                                  "(ONNX places the window differently); use an odd size")
            node("LRN", ins, y, n, doc, size=int(op["size"]), alpha=float(op["alpha"]), beta=float(op["beta"]),
                 bias=float(op["k"]))
        elif k == "relu":
            node("Relu", ins, y, n, doc)
        elif k == "relu6":
            node("Clip", [ins[0], init(f"{n}.min", np.array(0, np.float32)), init(f"{n}.max", np.array(6, np.float32))],
                 y, n, doc)
        elif k == "flatten":
            node("Flatten", ins, y, n, doc, axis=1)
        elif k == "dropout":
            ratio = init(f"{n}.ratio", np.array(op["p"], dtype=np.float32))
            node("Dropout", [ins[0], ratio], y, n, doc)
        elif k == "softmax":
            node("Softmax", ins, y, n, doc, axis=1)
        elif k == "batchnorm":
            args = [ins[0]] + [init(f"{n}.{s}", np.asarray(params[f"{n}.{s}"], dtype=np.float32))
                               for s in ("weight", "bias", "running_mean", "running_var")]
            node("BatchNormalization", args, y, n, doc, epsilon=float(op["eps"]))
        elif k == "concat":
            node("Concat", ins, y, n, doc, axis=1)
        elif k == "add":
            node("Add" if len(ins) == 2 else "Sum", ins, y, n, doc)
        elif k == "slice":
            args = [ins[0], init(f"{n}.starts", np.array([op["start"]], np.int64)),
                    init(f"{n}.ends", np.array([op["stop"]], np.int64)), init(f"{n}.axes", np.array([1], np.int64))]
            node("Slice", args, y, n, doc)
        else:
            raise ExportError(f"layer {n!r}: no ONNX form for op kind {k!r}")
        if act == "relu":
            node("Relu", [y], n, f"{n}/relu", doc)
        elif act is not None:
            raise ExportError(f"layer {n!r}: no ONNX form for the fused activation {act!r}")
    in_shape = tuple(g.nodes[g.graph["input"]]["shape"])
    out_shape = tuple(g.nodes[out_name]["shape"])
    graph = helper.make_graph(
        nodes, str(g.graph.get("name") or "network"),
        [helper.make_tensor_value_info(g.graph["input"], TensorProto.FLOAT, [BATCH, *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [BATCH, *out_shape])],
        initializer=inits,
        doc_string=f"exported by cnnc from {g.graph.get('source', '<string>')}",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cnnc", producer_version=_version())
    model.ir_version = IR_VERSION
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the ONNX form of {g.graph.get('name')!r} fails the ONNX checker (an average pool "
                          f"whose last ceil window starts in the padding has no ONNX equivalent): {e}") from None
    return model


def _version() -> str:
    from ... import __version__

    return str(__version__)


def save(model: Any, path: str | os.PathLike, external_data: bool = False) -> Path:
    """Write ``model`` to ``path`` (with ``external_data``, the weights go to ``<path>.data`` beside it)."""
    onnx = require_onnx()
    path = Path(path)
    try:
        if external_data:
            onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + ".data", size_threshold=0)
        else:
            onnx.save_model(model, str(path))
    except OSError as e:
        raise CnncError(f"cannot write {path}: {e.strerror or e}") from None
    return path
