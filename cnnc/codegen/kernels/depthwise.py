"""Direct depthwise convolution (groups == input channels), the MobileNet case.

With one input channel per group, im2col + GEMM multiplies a ``(K/C, k*k)`` matrix by a ``(k*k, pixels)`` one per
channel: BLAS runs far below its ceiling and the gather costs as much as the arithmetic. The direct kernel splits
each input channel once into ``s*s`` zero-padded phase planes, after which every tap of the window is one
contiguous stretch of one plane, whatever the stride; the output is computed a band of rows at a time, as one
long vectorised loop over the band's pixels (``Wq`` columns wide, so rows join into one loop even on 7x7 images)
that sums the nine products of a 3x3 window at once (other kernels: one pass per tap, in L1).

A 3x3 kernel of stride 1 and padding 1 (MobileNet's nine stride-1 layers) skips the planes: each output channel is
one vectorised pass over its input channel read flat where it lies, the window's left and right columns dropped by
a select at the image's edges. Measured against the planes on one thread at batch 1, MobileNet's shapes: 0.44-0.69x
the time per channel, 7x7 to 112x112 images.
"""

from __future__ import annotations

from . import ConvShape, Strategy, residual_args

#: the direct kernel's time per image ~ MACs / MAC_RATE + input elements / PLANE_RATE (the phase-plane copy) +
#: output channels x CHANNEL_COST (per-channel set-up, what dominates 7x7 planes); where it reads in place (3x3,
#: stride 1, padding 1), MACs / FLAT_MAC_RATE + output channels x FLAT_CHANNEL_COST. Least squares of the relative
#: error over 18 depthwise shapes (MobileNet's nine, and 5x5, odd sizes; one thread, batch 1, the fastest of a
#: second of runs; 2-core AMD EPYC): within 22% on each
MAC_RATE = 15.8e9
PLANE_RATE = 4.5e9
CHANNEL_COST = 1.7e-7
FLAT_MAC_RATE = 24e9
FLAT_CHANNEL_COST = 7.7e-8
#: elements of the wide output band (float32, 8 KiB: it stays in L1 with the stretches of planes it reads)
BAND = 2048


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != sh.C:
        return "needs groups == input channels (depthwise)"
    return None


def in_place(sh: ConvShape) -> bool:
    """Whether the kernel reads the input where it lies (3x3, stride 1, padding 1), without phase planes."""
    return sh.k == 3 and sh.s == 1 and sh.p == 1 and sh.K == sh.C


def _cost(sh: ConvShape, n: int) -> float:
    if in_place(sh):
        return sh.macs / FLAT_MAC_RATE + sh.K * FLAT_CHANNEL_COST
    return sh.macs / MAC_RATE + sh.C * sh.H * sh.W / PLANE_RATE + sh.K * CHANNEL_COST


def band_rows(sh: ConvShape) -> int:
    """Output rows per band: as many ``Wq``-wide rows as fit :data:`BAND` elements (at least one)."""
    wq = sh.Wo + (sh.k - 1) // sh.s
    return max(1, min(sh.Ho, BAND // wq))


def scratch_sizes(sh: ConvShape) -> tuple[int, int]:
    """Elements of the kernel's per-thread scratch: (phase planes, wide output band)."""
    e = (sh.k - 1) // sh.s
    return sh.s * sh.s * (sh.Ho + e) * (sh.Wo + e), band_rows(sh) * (sh.Wo + e)


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    planes, wide = scratch_sizes(sh)
    scratch["cols"] = max(scratch["cols"], planes)
    scratch["tmp"] = max(scratch["tmp"], wide)
    x = step.inputs[0]
    out = step.output
    nm = repr(step.weights)
    return (f"depthwise({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, {band_rows(sh)}, scratch)")


STRATEGY = Strategy("depthwise", "depthwise", "direct depthwise conv (groups == channels)", _eligible, _cost,
                    _call)
