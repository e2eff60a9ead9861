"""Receptive fields: the window of the network's input that one output element depends on.

Per spatial axis a tensor carries ``size`` (the window of one element, in input pixels),
``jump`` (the input distance between neighbouring elements) and ``start`` (where the window of
element 0 begins; negative when it reaches into the padding). A window op (conv, pooling: any
op with ``kernel`` and ``stride``) maps them as the lecture does: ``size + (F - 1)*jump``,
``jump*S``, ``start - P*jump``. A merge takes the largest over its branches. Ops that see their
whole input (fc, global pooling) cover the part of the input their input tensor covers, clipped
to the input (a stride that does not fit leaves the last rows unseen). Element-wise ops and
views keep the field. Sizes of window ops are not clipped at the borders (the usual convention:
deep layers may see "more" than the input, padding included).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..graph import ordered

GLOBAL_KINDS = ("fc", "gap")


@dataclass(frozen=True)
class Field:
    """The receptive field of one tensor's elements, per spatial axis (height, width)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def text(self, jump: bool = True) -> str:
        """``7x7/2``: size and, when not 1 (and wanted: a flat tensor has no neighbours), the jump."""
        h, w = self.size
        if not jump:
            return f"{h}x{w}"
        step = "" if self.jump == (1, 1) else "/" + (str(self.jump[0]) if self.jump[0] == self.jump[1]
                                                     else f"{self.jump[0]}x{self.jump[1]}")
        return f"{h}x{w}{step}"

    def as_dict(self) -> dict[str, list[int]]:
        return {"size": list(self.size), "jump": list(self.jump), "start": list(self.start)}


def _covered(f: Field, n: tuple[int, int], limit: tuple[int, int]) -> Field:
    """The part of the input covered by a tensor of ``n`` positions per axis, clipped to the input."""
    size, start = [], []
    for a in range(2):
        lo = max(0, f.start[a])
        hi = min(limit[a], f.start[a] + f.size[a] + (n[a] - 1) * f.jump[a])
        size.append(max(0, hi - lo))
        start.append(lo)
    return Field((size[0], size[1]), (size[0], size[1]), (start[0], start[1]))


def _merge(fs: list[Field]) -> Field:
    """The field of a tensor computed from several: the largest size and jump, the earliest start."""
    return Field((max(f.size[0] for f in fs), max(f.size[1] for f in fs)),
                 (max(f.jump[0] for f in fs), max(f.jump[1] for f in fs)),
                 (min(f.start[0] for f in fs), min(f.start[1] for f in fs)))


def receptive_fields(g: nx.DiGraph) -> dict[str, Field | None]:
    """The receptive field of every node on the network's input; None for a flat (non-image) input."""
    inp = g.graph["input"]
    ishape = g.nodes[inp]["shape"]
    if len(ishape) != 3:
        return {n: None for n in g.nodes}
    limit = (ishape[1], ishape[2])
    out: dict[str, Field | None] = {}
    # the spatial positions a tensor has, for ops that see all of them (fc after flatten)
    extent: dict[str, tuple[int, int]] = {}
    for n in ordered(g):
        d = g.nodes[n]
        op, shape = d["op"], d["shape"]
        ins = d["inputs"]
        if op.kind == "input":
            out[n], extent[n] = Field((1, 1), (1, 1), (0, 0)), limit
            continue
        fields = [out[i] for i in ins]
        if any(f is None for f in fields) or not fields:
            out[n] = None
            continue
        if "kernel" in op.attrs and "stride" in op.attrs and len(shape) == 3:
            # a conv's first input is its window's; a second (a residual fused by -O1's fuse_add) is a merge
            f, *residual = fields
            assert f is not None
            k, s, p = op["kernel"], op["stride"], op.get("pad", 0)
            p = p if isinstance(p, int) else 0
            win = Field(tuple(f.size[a] + (k - 1) * f.jump[a] for a in range(2)),  # type: ignore[arg-type]
                        tuple(f.jump[a] * s for a in range(2)),  # type: ignore[arg-type]
                        tuple(f.start[a] - p * f.jump[a] for a in range(2)))  # type: ignore[arg-type]
            out[n] = _merge([win, *residual])  # type: ignore[list-item]
            extent[n] = (shape[1], shape[2])
        elif op.kind in GLOBAL_KINDS:
            (f,) = fields
            assert f is not None
            out[n] = _covered(f, extent[ins[0]], limit)
            extent[n] = (1, 1)
        else:
            out[n] = _merge([f for f in fields if f is not None])
            extent[n] = (shape[1], shape[2]) if len(shape) == 3 else extent[ins[0]]
    return out
