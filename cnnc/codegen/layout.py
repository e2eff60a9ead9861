"""Which tensors of a CPU plan are stored blocked, and which 1x1 convs change kernel for it.

A module's API is NCHW, and so is every tensor by default. A tensor may instead be stored *blocked* (NCHWc, as
ONNX Runtime keeps its tensors): channel block ``c // lanes`` of an image holds its pixels one after the other, each
pixel's ``lanes`` channels contiguous, so element ``(c, p)`` of an ``M``-pixel image lies at ``(c // lanes)*M*lanes +
p*lanes + c % lanes``. The kernels vectorised over channels (``direct1x1_oc``, ``depthwise_oc``) then load and store
a pixel's channels as one vector instead of gathering, transposing and scattering them: measured on one thread at
batch 8, a 512->512 1x1 conv on 14x14 ran at 106-109 GFLOP/s blocked in and out against 95-101 in NCHW, and a 512x14x14
depthwise 3x3 in 0.33 ms against 0.40. The blocked output is what pays most: on two threads at batch 8, ResNet-50's
256->1024 1x1 conv on 14x14 ran at 188-199 GFLOP/s into a blocked output against 166-172 into NCHW, whichever its
input. ``im2col_oc`` reads a blocked input too: its gather puts each block of channels back into NCHW rows first.

A tensor is blocked only where nothing can tell: it is produced by a conv whose kernel can write blocked, read only by
convs that can read it (as their input, or as the residual their output overwrites), it is neither the network's
input nor its output nor a view or slice of another (concat, flatten), and its channels are a multiple of
:data:`LANES` (so a blocked tensor takes exactly the elements, and a channel offset the offset, that NCHW gives it:
the memory plan stands). A 1x1 conv the cost model gave ``direct1x1`` or ``gemm1x1`` runs ``direct1x1_oc`` instead
when both its input and output are blocked (on 56x56 images it ran 10-20% slower than ``direct1x1`` with only one
side blocked, and as fast with both); a strategy forced with ``--kernel`` is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from networkx.utils import UnionFind

from .kernels import Choice
from .schedule import Plan, Ref

#: the channel block: AVX-512's 16 float32 lanes (AVX2's 8 divide it, so a blocked tensor suits either)
LANES = 16
#: strategies that read a blocked input / write a blocked output (and read a blocked residual)
READS_BLOCKED = frozenset({"direct1x1_oc", "depthwise_oc", "im2col_oc"})
WRITES_BLOCKED = frozenset({"direct1x1_oc", "depthwise_oc", "im2col_oc"})
#: strategies a 1x1 conv leaves for SWITCH_TO when its input and output are both blocked
SWITCHABLE = frozenset({"direct1x1", "gemm1x1"})
SWITCH_TO = "direct1x1_oc"


@dataclass(frozen=True)
class Layout:
    """A conv step's layouts: its input blocked (``x``), its output and residual blocked (``y``), and the strategy it
    runs (a switched 1x1 conv's differs from the cost model's)."""

    choice: Choice
    x: bool = False
    y: bool = False


def _overlaps(a: Ref, b: Ref) -> bool:
    return a.buffer == b.buffer and a.offset < b.offset + b.size and b.offset < a.offset + a.size


def _channels(ref: Ref) -> int:
    return ref.shape[0] if len(ref.shape) == 3 else 0


def plan_layouts(plan: Plan, choices: dict[int, Choice]) -> dict[int, Layout]:
    """``{index of a conv step: Layout}`` for ``plan``'s conv steps, whose cost-model (or forced) strategies are
    ``choices`` (by step index). Preserves every step's result: only where tensors lie, and a 1x1 conv's kernel."""
    steps = plan.steps
    forced = set(plan.kernels)

    def single(i: int) -> str | None:  # the one strategy of a conv step at every batch size
        c = choices.get(i)
        return c.kernel if c is not None and c.small is None else None

    def switchable(i: int) -> bool:
        return single(i) in SWITCHABLE and steps[i].node not in forced

    groups = UnionFind()  # producing steps whose tensors must share a layout
    bad: set[int] = set()  # producers whose tensor must stay NCHW
    producer: dict[int, int] = {}  # conv step -> the conv step whose (blockable) tensor is its input
    residual: set[int] = set()  # conv steps whose fused residual is a conv's tensor
    for i, s in enumerate(steps):
        if s.kind != "conv":
            continue
        groups[i]  # its own group until a union
        if single(i) not in WRITES_BLOCKED and not switchable(i):
            bad.add(i)
        out = s.output
        if _channels(out) == 0 or _channels(out) % LANES:
            bad.add(i)
        # every later reader of the tensor, until something writes over it
        for j in range(i + 1, len(steps)):
            t = steps[j]
            for role, r in enumerate(t.inputs):
                if not _overlaps(r, out):
                    continue
                if r != out or t.kind != "conv":
                    bad.add(i)  # a view, a slice, a concat, or a step other than a conv
                elif role == 0 and (single(j) in READS_BLOCKED or switchable(j)):
                    producer[j] = i
                    if switchable(j):
                        groups.union(i, j)  # a switched 1x1 conv has both sides blocked, or neither
                elif role == 1 and t.op.get("residual"):
                    residual.add(j)
                    groups.union(i, j)  # the residual lies as the output does
                else:
                    bad.add(i)
            if _overlaps(t.output, out):
                if t.kind == "concat":
                    bad.add(i)  # computed in place into a concat: read as part of that tensor
                break
        else:  # still there at the end: (part of) the network's output?
            if _overlaps(out, plan.output):
                bad.add(i)
    for j, s in enumerate(steps):
        if s.kind != "conv":
            continue
        if switchable(j) and j not in producer:
            bad.add(j)  # its input is not a conv's tensor: it stays NCHW, and so must its output
        if s.op.get("residual") and j not in residual:
            bad.add(j)  # its residual is not a conv's tensor: it stays NCHW, and so must the output
    failed = {groups[i] for i in bad}
    blocked = {i for i in groups if groups[i] not in failed}
    out: dict[int, Layout] = {}
    for i, s in enumerate(steps):
        if s.kind != "conv":
            continue
        x = producer.get(i) in blocked
        y = i in blocked
        choice = choices[i]
        if (x or y) and switchable(i):
            choice = Choice(SWITCH_TO)
        out[i] = Layout(choice, x, y)
    return out


def describe(layout: Layout) -> str:
    """What a step's comment adds about its layouts: ``", blocked in and out"``, ``", blocked out"``, or nothing."""
    if layout.x and layout.y:
        return ", blocked in and out"
    if layout.x:
        return ", blocked in"
    if layout.y:
        return ", blocked out"
    return ""
