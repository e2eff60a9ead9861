"""Direct depthwise convolution (groups == input channels), the MobileNet case.

With one input channel per group, im2col + GEMM multiplies a ``(K/C, k*k)`` matrix by a ``(k*k, pixels)`` one per
channel: BLAS runs far below its ceiling and the gather costs as much as the arithmetic. The direct kernel splits
each input channel once into ``s*s`` zero-padded phase planes, after which every tap of the window is one long
contiguous multiply-add over the whole output plane (vectorised), whatever the stride. Planes of a few dozen
pixels leave those loops too short: there the kernel runs channels-last instead (the taps vectorised over channels,
the image transposed in and out of a scratch).
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, residual_args

#: multiply-adds per second of the direct kernel, stride 1 and strided (fitted with the GEMM constants to
#: benchmarks/kernels.py: it beat im2col on 20 of the 21 depthwise (shape, batch) pairs of archs/)
RATE_STRIDE1 = 2.5e9
RATE_STRIDED = 1.2e9


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != sh.C:
        return "needs groups == input channels (depthwise)"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    rate = RATE_STRIDE1 if sh.s == 1 else RATE_STRIDED
    return sh.macs / rate + sh.K * sh.Ho * sh.Wo / MOVE_RATE


#: output planes smaller than this (pixels) run channels-last (``_depthwise_hwc``) when K == C: measured
#: side by side, channels-last was 3-5x faster on 7x7 outputs (MobileNet's last convs) and 2-10x slower from 14x14
HWC_PIXELS = 64


def channels_last(sh: ConvShape) -> bool:
    """Whether the channels-last variant runs ``sh``: small images, one output channel per input channel."""
    return sh.K == sh.C and sh.Ho * sh.Wo < HWC_PIXELS


def scratch_sizes(sh: ConvShape) -> tuple[int, int]:
    """Elements of the kernel's per-thread scratch: (phase planes, wide output), or channels-last (input, output)."""
    if channels_last(sh):
        return sh.H * sh.W * sh.C, sh.Ho * sh.Wo * sh.K
    e = (sh.k - 1) // sh.s
    return sh.s * sh.s * (sh.Ho + e) * (sh.Wo + e) + e + 1, sh.Ho * (sh.Wo + e)


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    planes, wide = scratch_sizes(sh)
    scratch["cols"] = max(scratch["cols"], planes)
    scratch["tmp"] = max(scratch["tmp"], wide)
    x = step.inputs[0]
    out = step.output
    nm = repr(step.weights)
    hwc = f", W[{_key(step)!r}]" if channels_last(sh) else ""
    return (f"depthwise({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, scratch{hwc})")


def _key(step) -> str:
    return f"{step.weights}#taps"


def _transform(step, sh: ConvShape) -> tuple[str, str] | None:
    if not channels_last(sh):
        return None
    return _key(step), f"_taps_by_channel(self.W[{step.weights!r}])"


STRATEGY = Strategy("depthwise", "depthwise", "direct depthwise conv (groups == channels)", _eligible, _cost,
                    _call, _transform)
