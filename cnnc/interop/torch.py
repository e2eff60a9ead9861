"""PyTorch interoperability: an independent oracle and trained-weight import.

* :func:`run_torch` evaluates a cnnc graph with ``torch.nn.functional`` only (no cnnc
  arithmetic), so it checks :mod:`cnnc.runtime.reference` independently.
* :func:`state_dict_to_params` turns a PyTorch ``state_dict`` into validated cnnc
  parameters; :func:`save_state_dict` writes them as an ``.npz``.

torch is optional (``pip install torch==2.13.0``, the CPU build); it is imported lazily
and its absence is a :class:`~cnnc.errors.CnncError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ..errors import CnncError, GraphError, ParamsError
from ..graph import ordered
from ..params import DTYPE, problems, save, specs, validate
from ..runtime.reference import check_input

INSTALL = "pip install torch==2.13.0"


def require_torch() -> Any:
    """The ``torch`` module, or a :class:`CnncError` saying how to install it."""
    try:
        import torch
    except ImportError:
        raise CnncError(f"this needs PyTorch, which is not installed: {INSTALL} (the CPU build)") from None
    return torch


def _pad(op: Any) -> int:
    return op["kernel"] // 2 if op["pad"] == "same" else int(op["pad"])


def _weights(torch: Any, g: nx.DiGraph, n: str, p: Mapping[str, Any]) -> tuple[Any, Any]:
    """A conv/fc node's weight and bias as tensors, folding ``parts`` with torch arithmetic."""
    op = g.nodes[n]["op"]
    parts = op.get("parts") or [{"node": n, "bias": op.get("bias", True), "bn": None}]
    ws, bs, any_bias = [], [], False
    for part in parts:
        w = p[f"{part['node']}.weight"]
        b = p[f"{part['node']}.bias"] if part.get("bias") else torch.zeros(w.shape[0], dtype=w.dtype)
        any_bias = any_bias or bool(part.get("bias"))
        if part.get("bn"):
            bn = part["bn"]
            scale = p[f"{bn}.weight"] / torch.sqrt(p[f"{bn}.running_var"] + part.get("eps", 1e-5))
            w = w * scale.reshape([-1] + [1] * (w.dim() - 1))
            b = (b - p[f"{bn}.running_mean"]) * scale + p[f"{bn}.bias"]
            any_bias = True
        ws.append(w)
        bs.append(b)
    return torch.cat(ws, 0), (torch.cat(bs, 0) if any_bias else None)


def _node(torch: Any, g: nx.DiGraph, n: str, xs: list[Any], p: Mapping[str, Any]) -> Any:
    F = torch.nn.functional
    op = g.nodes[n]["op"]
    k = op.kind
    x = xs[0] if xs else None
    if k == "conv":
        w, b = _weights(torch, g, n, p)
        pad = _pad(op)
        h_out, w_out = g.nodes[n]["shape"][1:]
        kk, s = op["kernel"], op["stride"]
        # ceil rounding: extra zeros right/bottom so the last window fits (conv2d has no ceil mode)
        extra_h = max(0, (h_out - 1) * s + kk - x.shape[2] - 2 * pad)
        extra_w = max(0, (w_out - 1) * s + kk - x.shape[3] - 2 * pad)
        if extra_h or extra_w:
            x = F.pad(x, (0, extra_w, 0, extra_h))
        y = F.conv2d(x, w, b, stride=s, padding=pad, groups=op["groups"])
        if op.get("residual"):
            y = y + xs[1]
    elif k == "fc":
        w, b = _weights(torch, g, n, p)
        y = F.linear(torch.flatten(x, 1), w, b)
    elif k == "maxpool":
        return F.max_pool2d(x, op["kernel"], op["stride"], _pad(op), ceil_mode=op["round"] == "ceil")
    elif k == "avgpool":
        return F.avg_pool2d(x, op["kernel"], op["stride"], _pad(op), ceil_mode=op["round"] == "ceil",
                            count_include_pad=bool(op["count_pad"]))
    elif k == "gap":
        return F.adaptive_avg_pool2d(x, 1)
    elif k == "lrn":
        return F.local_response_norm(x, op["size"], alpha=op["alpha"], beta=op["beta"], k=op["k"])
    elif k == "relu":
        return F.relu(x)
    elif k == "relu6":
        return F.relu6(x)
    elif k == "flatten":
        return torch.flatten(x, 1)
    elif k == "dropout":
        return F.dropout(x, op["p"], training=False)
    elif k == "softmax":
        return F.softmax(x, dim=1)
    elif k == "batchnorm":
        y = F.batch_norm(x, p[f"{n}.running_mean"], p[f"{n}.running_var"], p[f"{n}.weight"],
                         p[f"{n}.bias"], training=False, eps=op["eps"])
    elif k == "concat":
        return torch.cat(xs, 1)
    elif k == "add":
        y = torch.stack(xs).sum(0)
    elif k == "slice":
        return x[:, op["start"] : op["stop"]]
    else:
        raise GraphError(f"the PyTorch oracle has no rule for op kind {k!r} (node {n!r})")
    act = op.get("act")
    if act == "relu":
        return F.relu(y)
    if act is not None:
        raise GraphError(f"unknown fused activation {act!r}")
    return y


def run_torch(g: nx.DiGraph, params: Mapping[str, np.ndarray], x: Any, dtype: Any = np.float64,
              all_nodes: bool = False) -> Any:
    """The network's output for batch ``x`` computed by PyTorch in ``dtype`` (a NumPy array).

    With ``all_nodes`` every node's output, as a dict of NumPy arrays.
    """
    torch = require_torch()
    dtype = np.dtype(dtype)
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]
    x = check_input(g, x)
    p = {k: torch.from_numpy(np.asarray(v, dtype=dtype).copy()) for k, v in params.items()}
    values: dict[str, Any] = {}
    with torch.no_grad():
        for n in ordered(g):
            d = g.nodes[n]
            if d["op"].kind == "input":
                y = torch.from_numpy(x.astype(dtype)).to(tdtype)
            else:
                y = _node(torch, g, n, [values[i] for i in d["inputs"]], p)
            want = (x.shape[0],) + tuple(d["shape"])
            if tuple(y.shape) != want:
                raise GraphError(f"PyTorch gives node {n!r} the shape {tuple(y.shape[1:])}, "
                                 f"the graph says {d['shape']}")
            values[n] = y
    if all_nodes:
        return {n: v.numpy() for n, v in values.items()}
    return values[g.graph["output"]].numpy()


NameMap = Mapping[str, str] | Callable[[str], str] | None
IGNORED_SUFFIXES = (".num_batches_tracked",)


def state_dict_to_params(state_dict: Mapping[str, Any], g: nx.DiGraph, mapping: NameMap = None,
                         strict: bool = True) -> dict[str, np.ndarray]:
    """cnnc parameters (float32, validated) from a PyTorch ``state_dict`` of tensors.

    ``mapping`` gives the torch name of each cnnc parameter: a dict (cnnc name -> torch name;
    names it lacks map to themselves) or a callable; None uses the cnnc names. Every problem
    (a missing torch entry, a wrong shape, a non-finite value) is reported in one
    :class:`ParamsError`. With ``strict`` (the default), state_dict entries no cnnc parameter
    maps to are problems too (``num_batches_tracked`` counters excepted).
    """
    if mapping is None:
        def name_of(n: str) -> str:
            return n
    elif callable(mapping):
        name_of = mapping
    else:
        table = dict(mapping)

        def name_of(n: str) -> str:
            return table.get(n, n)

    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    used: set[str] = set()
    for name, shape in specs(g):
        tname = name_of(name)
        if tname not in state_dict:
            missing.append(f"missing {name}: the state_dict has no entry {tname!r} (expected shape {shape})")
            continue
        used.add(tname)
        t = state_dict[tname]
        if hasattr(t, "detach"):  # a tensor; half and bfloat16 have no NumPy view, so widen floats first
            t = t.detach().cpu()
            a = (t.float() if t.is_floating_point() else t).numpy()
        else:
            a = np.asarray(t)
        if not np.issubdtype(a.dtype, np.floating):
            missing.append(f"{name} (torch {tname!r}) has dtype {a.dtype}, expected floating point")
            continue
        out[name] = np.ascontiguousarray(a, dtype=DTYPE)
    if strict:
        for tname in state_dict:
            if tname not in used and not tname.endswith(IGNORED_SUFFIXES):
                missing.append(f"unused state_dict entry {tname!r} (no cnnc parameter maps to it)")
    found = missing + [p for p in problems(out, g) if not p.startswith("missing ")]
    if found:
        net = g.graph.get("name") or "the network"
        raise ParamsError(f"the state_dict does not fit {net!r} ({len(found)} problem"
                          f"{'s' if len(found) != 1 else ''}):\n" + "\n".join(f"  - {p}" for p in found))
    return validate(out, g)


def save_state_dict(path: str | os.PathLike, state_dict: Mapping[str, Any], g: nx.DiGraph,
                    mapping: NameMap = None, strict: bool = True) -> Path:
    """Convert ``state_dict`` (see :func:`state_dict_to_params`) and save it as an ``.npz`` at ``path``."""
    return save(path, state_dict_to_params(state_dict, g, mapping, strict))
