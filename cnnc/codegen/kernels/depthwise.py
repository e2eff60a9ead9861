"""Direct depthwise convolution (groups == input channels), the MobileNet case.

With one input channel per group, im2col + GEMM multiplies a ``(K/C, k*k)`` matrix by a ``(k*k, pixels)`` one per
channel: BLAS runs far below its ceiling and the gather costs as much as the arithmetic. The direct kernel splits
each input channel once into ``s*s`` zero-padded phase planes, after which every tap of the window is one long
contiguous multiply-add over the whole output plane (vectorised), whatever the stride or the image size.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy

#: multiply-adds per second of the direct loop, stride 1 (vectorised) and strided (measured per core)
RATE_STRIDE1 = 2.7e9
RATE_STRIDED = 0.6e9


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != sh.C:
        return "needs groups == input channels (depthwise)"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    rate = RATE_STRIDE1 if sh.s == 1 else RATE_STRIDED
    return sh.macs / rate + sh.K * sh.Ho * sh.Wo / MOVE_RATE


def scratch_sizes(sh: ConvShape) -> tuple[int, int]:
    """``(phase planes, wide output)`` elements of the kernel's per-thread scratch."""
    e = (sh.k - 1) // sh.s
    return sh.s * sh.s * (sh.Ho + e) * (sh.Wo + e) + e + 1, sh.Ho * (sh.Wo + e)


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    planes, wide = scratch_sizes(sh)
    scratch["cols"] = max(scratch["cols"], planes)
    scratch["tmp"] = max(scratch["tmp"], wide)
    (x,) = step.inputs
    out = step.output
    nm = repr(step.weights)
    return (f"depthwise({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, scratch)")


STRATEGY = Strategy("depthwise", "depthwise", "direct depthwise conv (groups == channels)", _eligible, _cost,
                    _call)
