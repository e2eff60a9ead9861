"""Memory planning: activation buffers reused by liveness.

Requires: any graph; run last (any later rewrite drops the plan, see :mod:`.rewrite`).
Ensures: every node has ``buffer`` (an int) and ``g.graph["buffers"]`` maps each id to its
size in elements per image (the largest tensor it ever holds). Nodes share a buffer when

* the node is a view of its input (``flatten``, ``slice``, ``dropout``): it is the input's
  memory (a slice at its channel offset);
* the node works in place (``relu``, ``softmax``) and its input's value is read by nothing
  else (every node from the input back to the buffer's owner has this single reader, and
  the owner is not the network input);
* the node is an ungrouped conv with a fused residual (:func:`overwrites_residual`), no node
  sharing the residual's buffer is read after it (it is the last reader: a ResNet block's input,
  read first by the block's first conv) or is the output, the buffer is not the network input's
  and its main input lives elsewhere: it writes over the residual;
* the node writes into an in-place concat (``concat_elim``): its buffer is the concat's, at
  its channel offset (the concat's input order);
* or their lifetimes do not overlap: a buffer is live from the first write of any node
  sharing it to the last read of any of them (the output's buffer lives to the end).

Buffers are assigned greedily in execution order, best fit first. ``g.graph["memory"]``
records ``{"before": elements if every tensor had its own buffer, "after": sum of the
planned buffers}`` per image (float32: x4 bytes); :func:`describe` formats it.
Preserves values: yes (it only decides where tensors live).
"""

from __future__ import annotations

import networkx as nx

from ..graph import ordered
from ..ops import Op
from .rewrite import clone, consumers

PRESERVES_VALUES = True
OPTIONS: dict[str, tuple[type, object, str]] = {}

VIEW_KINDS = frozenset({"flatten", "slice", "dropout"})
INPLACE_KINDS = frozenset({"relu", "relu6", "softmax"})


def overwrites_residual(op: Op) -> bool:
    """Whether ``op`` (a node's op) may write its output over its fused residual input (``fuse_add``): an
    ungrouped conv, whose every kernel (CPU and CUDA) reads a residual element before it writes the same output
    element. (A depthwise conv on CUDA writes its output before a separate launch adds the residual.)"""
    return op.kind == "conv" and bool(op.get("residual")) and op.get("groups", 1) == 1


def owners(g: nx.DiGraph) -> dict[str, str]:
    """For every node, the node owning the memory its output lives in (itself when it allocates)."""
    uses = consumers(g)
    inp, out = g.graph["input"], g.graph["output"]
    owner: dict[str, str] = {}

    reuses: dict[str, str] = {}  # node -> the node whose memory it took over
    step = {n: t for t, n in enumerate(ordered(g))}

    def last_reader(n: str, r: str) -> bool:
        """No node sharing ``r``'s memory is read after ``n`` or is the output; the memory is not the input's."""
        o = owner[r]
        return o != inp and all(m != out and all(step[u] <= step[n] for u in uses[m])
                                for m in owner if owner[m] == o)

    def sole_reader_chain(n: str) -> bool:
        """``n``'s value, and every node it aliases, is read only by one node and is not the output."""
        while True:
            if len(uses[n]) != 1 or n == out:
                return False
            if owner[n] == n:
                return n != inp
            n = reuses[n]

    for n in ordered(g):
        op = g.nodes[n]["op"]
        ins = g.nodes[n]["inputs"]
        if op.kind in VIEW_KINDS or (op.kind in INPLACE_KINDS and sole_reader_chain(ins[0])):
            reuses[n] = ins[0]
        elif overwrites_residual(op) and last_reader(n, ins[1]) and owner[ins[0]] != owner[ins[1]]:
            reuses[n] = ins[1]
        owner[n] = owner[reuses[n]] if n in reuses else n
    # producers writing into an in-place concat live in the concat's buffer
    for n in reversed(ordered(g)):
        op = g.nodes[n]["op"]
        if op.kind == "concat" and op.get("inplace"):
            for i in g.nodes[n]["inputs"]:
                owner[i] = owner[n]
    # a view of a concat input follows it (cannot happen for concat_elim's inputs, kept for safety)
    for n in ordered(g):
        if owner[n] != n and owner[owner[n]] != owner[n]:
            owner[n] = owner[owner[n]]
    return owner


def lifetimes(g: nx.DiGraph, owner: dict[str, str]) -> dict[str, tuple[int, float]]:
    """``owner -> (first step written, last step read)`` in execution order (inf for the output)."""
    step = {n: t for t, n in enumerate(ordered(g))}
    uses = consumers(g)
    life: dict[str, tuple[int, float]] = {}
    for n, o in owner.items():
        start = step[n]
        end: float = max([step[u] for u in uses[n]] + [step[n]])
        if n == g.graph["output"]:
            end = float("inf")
        s0, e0 = life.get(o, (start, end))
        life[o] = (min(s0, start), max(e0, end))
    return life


def elements(g: nx.DiGraph, n: str) -> int:
    size = 1
    for d in g.nodes[n]["shape"]:
        size *= d
    return size


def plan(g: nx.DiGraph) -> tuple[dict[str, int], dict[int, int], int]:
    """``(node -> buffer id, buffer id -> elements, elements without reuse)`` for ``g``."""
    owner = owners(g)
    life = lifetimes(g, owner)
    index = {n: t for t, n in enumerate(ordered(g))}
    roots = sorted(life, key=lambda o: (life[o][0], index[o]))
    sizes: dict[int, int] = {}
    active: list[tuple[float, int]] = []  # (end, buffer id)
    free: list[int] = []
    buffer_of: dict[str, int] = {}
    for o in roots:
        start, end = life[o]
        for item in [a for a in active if a[0] < start]:
            active.remove(item)
            free.append(item[1])
        need = elements(g, o)
        fits = [b for b in free if sizes[b] >= need]
        if fits:
            b = min(fits, key=lambda b: (sizes[b], b))
        elif free:
            b = max(free, key=lambda b: (sizes[b], -b))
        else:
            b = len(sizes)
            sizes[b] = 0
        if b in free:
            free.remove(b)
        sizes[b] = max(sizes[b], need)
        active.append((end, b))
        buffer_of[o] = b
    node_buffer = {n: buffer_of[o] for n, o in owner.items()}
    before = sum(elements(g, o) for o in roots)
    return node_buffer, sizes, before


def run(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` annotated with a memory plan."""
    new = clone(g)
    node_buffer, sizes, before = plan(new)
    for n, b in node_buffer.items():
        new.nodes[n]["buffer"] = b
    new.graph["buffers"] = dict(sorted(sizes.items()))
    new.graph["memory"] = {"before": before, "after": sum(sizes.values())}
    return new


def describe(g: nx.DiGraph, bytes_per_element: int = 4) -> str | None:
    """``peak activation memory: 15.2M -> 3.4M elements (61.0 MB -> 13.6 MB float32) per image``."""
    mem = g.graph.get("memory")
    if not mem:
        return None
    b, a = mem["before"], mem["after"]
    saved = 100.0 * (1 - a / b) if b else 0.0
    return (f"peak activation memory per image: {b:,} -> {a:,} elements "
            f"({b * bytes_per_element / 1e6:.3g} MB -> {a * bytes_per_element / 1e6:.3g} MB float32, "
            f"{saved:.0f}% less), {len(g.graph.get('buffers', {}))} buffers")
