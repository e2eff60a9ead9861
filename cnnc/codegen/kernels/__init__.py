"""Convolution strategies of the CPU backend: one module per strategy, and the cost model that picks one.

Every conv step of a CPU module runs one of a few generic kernels (shapes are arguments, DESIGN §5). Each
strategy module exports a :class:`Strategy`: its ``name`` (what ``--kernel`` and ``cnnc inspect`` show), the
kernel template it renders (``templates/cpu_kernel_<template>.j2``), when it is *eligible* for a conv shape, what
it *costs* (estimated seconds per image on the machine class below), the call line of a step, and, where it
needs one, a weight transform done once in ``Model.__init__``.

The cost model (:func:`choose`) takes the cheapest eligible strategy, averaging the estimate at batch 1 and 8,
unless the user forced one (``--kernel NAME`` or ``--kernel LAYER=NAME``). :func:`decide` adds a second strategy
for small batches where the model finds one clearly cheaper at batch 1 (a :class:`Choice`): a 128-channel 6x6 3x3
conv runs im2col_blocked at batch 1 and 2, where Winograd's 9 tiles per image make thin GEMMs, and Winograd from
batch 3.

The constants describe the machine class the issue measures on (2-core AVX2, float32 GEMM ceiling ~36 GFLOP/s per
core through OpenBLAS), fitted to ``benchmarks/kernels.py`` timings of every conv shape of the shipped networks at
batch 1 and 8 (the strategy chosen was the fastest measured on 167 of 194 (shape, batch) pairs, 10% slower than the
best on average, against 25% with the first guesses); they rank strategies, they do not predict absolute times.
Every strategy is tested against the float64 reference on every eligible conv shape of ``archs/``
(``tests/test_kernels.py``), so a forced choice is always correct, only perhaps slower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

    from ..schedule import Step

#: batch sizes the cost model averages over (latency and throughput both matter)
COST_BATCHES = (1, 8)
#: float32 GEMM ceiling of one core through OpenBLAS (FLOP/s), and the size of a dimension at which it reaches half
#: of it (OpenBLAS stays efficient on thin operands: 7x7 images at batch 1 measured as fast per image as batched)
GEMM_PEAK = 36e9
GEMM_HALF = 4
#: fixed cost of one BLAS call from a kernel (s): what makes a GEMM per group slow for grouped convs
GEMM_CALL = 2e-6
#: elements moved per second by a simple copy / transform loop (im2col, Winograd transforms)
MOVE_RATE = 1.2e9
#: weight elements per second a BLAS call reads and packs before it multiplies: every GEMM repacks its weight
#: operand, so a layer whose weights outweigh its columns (small images at batch 1) is bound by this, not by
#: the arithmetic (measured: a 512-channel 7x7 3x3 conv at batch 1 runs no faster on 2 threads than on 1)
WEIGHT_RATE = 1.2e9


@dataclass(frozen=True)
class ConvShape:
    """A convolution's shape: input ``C x H x W``, output ``K x Ho x Wo``, kernel ``k``, stride, pad, groups."""

    C: int
    H: int
    W: int
    K: int
    Ho: int
    Wo: int
    k: int
    s: int
    p: int
    G: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        return self.K * self.Ho * self.Wo * (self.C // self.G) * self.k * self.k

    def text(self) -> str:
        g = f" groups={self.G}" if self.G > 1 else ""
        return (f"{self.C}x{self.H}x{self.W} -> {self.K}x{self.Ho}x{self.Wo}, {self.k}x{self.k}/{self.s} "
                f"pad {self.p}{g}")


def gemm_seconds(m: int, n: int, k: int) -> float:
    """Estimated time of one ``(m, k) @ (k, n)`` float32 product on one core: the ceiling, scaled down
    for thin operands (each dimension ``d`` contributes ``d / (d + GEMM_HALF)``), plus the call's fixed cost."""
    eff = 1.0
    for d in (m, n, k):
        eff *= d / (d + GEMM_HALF)
    return 2.0 * m * n * k / (GEMM_PEAK * eff) + GEMM_CALL


def weight_seconds(elements: int, passes: float) -> float:
    """Estimated time per image of reading a weight operand of ``elements`` ``passes`` times per image (one BLAS
    call per tile of an image: ``passes`` > 1; one call for several images: ``passes`` < 1)."""
    return elements * passes / WEIGHT_RATE


def residual_args(step: Step) -> str:
    """The ``z, zo, res`` arguments of a conv kernel call: the fused residual's buffer and offset, or (none
    fused) the output's buffer, unread."""
    if step.op.get("residual"):
        r = step.inputs[1]
        return f"{r.buffer}, {r.offset}, True"
    return f"{step.output.buffer}, 0, False"


def layout_args(step: Step) -> str:
    """The keyword arguments a kernel call adds for blocked tensors (:mod:`cnnc.codegen.layout`): ``, xb=True``
    for a blocked input, ``, yb=True`` for a blocked output (and residual); nothing for NCHW."""
    lay = step.attrs.get("layout")
    return (", xb=True" if getattr(lay, "x", False) else "") + (", yb=True" if getattr(lay, "y", False) else "")


@dataclass(frozen=True)
class Strategy:
    """One way to run a convolution on the CPU.

    ``eligible(shape)`` returns None when the strategy applies, else the reason it does not; ``cost(shape, n)``
    estimates seconds per image at batch ``n``; ``call(step, shape, scratch)`` renders the step's call line
    (updating the ``scratch`` sizes it needs); ``transform(step, shape)`` returns ``(key, expression)``: a weight
    derived once in ``Model.__init__`` (``None`` when the kernel uses the effective weights as they are); ``needs``
    names the shared kernel templates its kernel calls besides its own (the im2col gather).
    """

    name: str
    template: str
    summary: str
    eligible: Callable[[ConvShape], str | None]
    cost: Callable[[ConvShape, int], float]
    call: Callable[[Step, ConvShape, dict[str, int]], str]
    transform: Callable[[Step, ConvShape], tuple[str, str] | None] = lambda step, shape: None
    needs: tuple[str, ...] = ()


def _strategies() -> dict[str, Strategy]:
    from . import (
        depthwise,
        depthwise_oc,
        direct,
        direct1x1,
        gemm1x1,
        im2col,
        im2col_blocked,
        kn2row,
        oc_blocks,
        winograd,
    )

    modules = (im2col, gemm1x1, direct1x1, im2col_blocked, direct, oc_blocks, depthwise, depthwise_oc, winograd,
               kn2row)
    return {s.name: s for m in modules for s in (m.STRATEGIES if hasattr(m, "STRATEGIES") else (m.STRATEGY,))}


#: name -> strategy, in a fixed order (ties go to the first)
STRATEGIES: dict[str, Strategy] = _strategies()
#: the strategy every conv can use
FALLBACK = "im2col"


def cost(strategy: Strategy, shape: ConvShape) -> float:
    """The estimate the choice minimises: seconds per image averaged over :data:`COST_BATCHES`."""
    return sum(strategy.cost(shape, n) for n in COST_BATCHES) / len(COST_BATCHES)


def eligible(shape: ConvShape) -> list[str]:
    """Names of the strategies that can run ``shape``."""
    return [n for n, s in STRATEGIES.items() if s.eligible(shape) is None]


def choose(shape: ConvShape, forced: str | None = None) -> str:
    """The strategy for ``shape``: ``forced`` when given (it must be eligible), else the cheapest."""
    if forced is not None:
        return forced
    names = eligible(shape)
    return min(names, key=lambda n: cost(STRATEGIES[n], shape))


#: how much cheaper (a fraction of the estimate) a strategy must be at batch 1 than the one :func:`choose` takes to
#: run the small batches instead: a margin for the model's error, and ties (a 1x1 conv costs the same through
#: im2col and gemm1x1 at batch 1) keep one kernel
SMALL_BATCH_GAIN = 0.03
#: how much cheaper at the largest batch of COST_BATCHES a strategy must be estimated than the one chosen over all of
#: them (which is then the cheaper at batch 1) to run the large batches instead: a strategy whose time per image
#: falls with the batch (Winograd's GEMMs) against one that stays flat (the blocks vectorised over output channels)
#: on 6x6-7x7 images, where the average hides that each may win at one end. How much the Winograds gain there at
#: batch 8 depends on the machine more than anything else the model weighs: on a Zen 4 EPYC (ms per image at batch
#: 1 / 8) ResNet's 512x7x7 3x3 ran im2col_oc 1.77/1.57 against winograd4 3.09/1.38 and NiN's mlp4 2.28/1.75 against
#: winograd 3.89/1.49, while on a Zen 5 EPYC, whose vector units multiply twice as fast and whose transforms run no
#: faster, im2col_oc won at batch 8 too: 0.55 against winograd4 0.92, mlp4 0.58 against winograd 0.66, GoogLeNet's
#: 160x7x7 -> 320 0.12 against winograd4 0.21 (estimated 29-42% cheaper). Half: the switch is for a gain the model's
#: error cannot undo
LARGE_BATCH_GAIN = 0.5


@dataclass(frozen=True)
class Choice:
    """The strategy of one conv layer: ``kernel`` at every batch size, except batches below ``below``, which run
    ``small`` when it is set."""

    kernel: str
    small: str | None = None
    below: int = 1

    def at(self, n: int) -> str:
        """The strategy a batch of ``n`` runs."""
        return self.small if self.small is not None and n < self.below else self.kernel

    def names(self) -> tuple[str, ...]:
        """The strategies the layer runs (small-batch one first)."""
        return (self.kernel,) if self.small is None else (self.small, self.kernel)

    def text(self) -> str:
        """``winograd``, or ``winograd (im2col at batch 1)``: what ``cnnc inspect`` and the generated code show."""
        if self.small is None:
            return self.kernel
        batches = "1" if self.below == 2 else f"1-{self.below - 1}"
        return f"{self.kernel} ({self.small} at batch {batches})"


def decide(shape: ConvShape, forced: str | None = None) -> Choice:
    """The :class:`Choice` for ``shape``: ``forced`` at every batch size when given; else :func:`choose`'s strategy,
    with the strategy cheapest at batch 1 for the batches below the first at which it is no longer cheaper, when it
    is :data:`SMALL_BATCH_GAIN` cheaper at batch 1; or, when the strategy cheapest at the largest batch weighed is
    :data:`LARGE_BATCH_GAIN` cheaper there than :func:`choose`'s, that one, with :func:`choose`'s below the first
    batch size at which it is no dearer."""
    if forced is not None:
        return Choice(forced)
    main = choose(shape)
    est = {n: STRATEGIES[n].cost for n in eligible(shape)}
    last = COST_BATCHES[-1]

    def split(large: str, small: str) -> Choice:
        # small runs below the first batch size at which large is estimated no dearer (by the last of COST_BATCHES
        # at the latest: of two strategies, the one with the lower average is the cheaper at batch 1 or at the last)
        below = next((n for n in range(2, last + 1) if est[large](shape, n) <= est[small](shape, n)), last)
        return Choice(large, small, below)

    large = min(est, key=lambda n: est[n](shape, last))
    if large != main and est[large](shape, last) < (1 - LARGE_BATCH_GAIN) * est[main](shape, last):
        return split(large, main)
    small = min(est, key=lambda n: est[n](shape, 1))
    if small == main or est[small](shape, 1) > (1 - SMALL_BATCH_GAIN) * est[main](shape, 1):
        return Choice(main)
    return split(main, small)


def decider() -> Callable[[ConvShape, str | None], Choice]:
    """:func:`decide`, remembering its answers: layers of one shape (and forced choice) share the decision, so a
    network of many equal layers is decided once per distinct shape."""
    decided: dict[tuple[ConvShape, str | None], Choice] = {}

    def decide_once(shape: ConvShape, forced: str | None = None) -> Choice:
        key = (shape, forced)
        if key not in decided:
            decided[key] = decide(shape, forced)
        return decided[key]

    return decide_once


def shape_of_node(g: nx.DiGraph, n: str) -> ConvShape:
    """The :class:`ConvShape` of conv node ``n``."""
    op = g.nodes[n]["op"]
    c, h, w = g.nodes[g.nodes[n]["inputs"][0]]["shape"]
    k, ho, wo = g.nodes[n]["shape"]
    pad = op.get("pad", 0)
    pad = op["kernel"] // 2 if pad == "same" else int(pad)
    return ConvShape(c, h, w, k, ho, wo, op["kernel"], op["stride"], pad, op["groups"])


def shape_of_step(step: Step) -> ConvShape:
    """The :class:`ConvShape` of a conv step of a plan."""
    x = step.inputs[0]
    c, h, w = x.shape
    k, ho, wo = step.output.shape
    op = step.op
    return ConvShape(c, h, w, k, ho, wo, op["kernel"], op["stride"], step.attrs["pad"], op["groups"])


def choices(g: nx.DiGraph) -> dict[str, Choice]:
    """``{conv node: Choice}`` for every conv of ``g``, honouring ``g.graph["kernels"]`` (see
    :func:`cnnc.codegen.kernels.options.resolve`)."""
    forced: Mapping[str, str] = g.graph.get("kernels") or {}
    decide_once = decider()
    return {n: decide_once(shape_of_node(g, n), forced.get(n)) for n in g.nodes if g.nodes[n]["op"].kind == "conv"}


def describe_costs(shape: ConvShape) -> dict[str, Any]:
    """``{strategy: estimated ms per image}`` for the eligible strategies of ``shape`` (for reports and tests)."""
    return {n: round(cost(STRATEGIES[n], shape) * 1e3, 4) for n in eligible(shape)}
