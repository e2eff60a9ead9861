"""1x1 stride-1 unpadded convolutions as one plain GEMM per image, on the input in place.

``y (K, H*W) = w (K, C) @ x (C, H*W)`` straight into the output buffer, bias and ReLU in one pass. No gather,
no scratch; at batch 1 the threads split the output channels (rows of the weight matrix), so, unlike im2col's
bands of output rows, no thread copies its part of the input.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args, weight_seconds


def _eligible(sh: ConvShape) -> str | None:
    if sh.k != 1 or sh.s != 1 or sh.p != 0:
        return "needs a 1x1 kernel, stride 1 and no padding"
    if sh.G != 1:
        return "needs groups=1"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    m = sh.Ho * sh.Wo
    return gemm_seconds(sh.K, m, sh.C) + sh.K * m / MOVE_RATE + weight_seconds(sh.K * sh.C, 1.0)  # a GEMM per image


def call_line(kernel: str, step, sh: ConvShape, weights: str | None = None, extra: str = "") -> str:
    """The call of a 1x1 conv ``kernel`` taking (input, channels, pixels, weights, bias, output, output channels,
    ReLU, residual): this strategy's ``conv1x1``, direct1x1's ``direct1x1`` and ``direct1x1_oc`` (whose weights
    are the transformed ones under the key ``weights``; by default the step's own), then ``extra`` arguments."""
    x = step.inputs[0]
    out = step.output
    w = repr(step.weights if weights is None else weights)
    return (f"{kernel}({x.buffer}, {x.offset}, {sh.C}, {sh.Ho * sh.Wo}, W[{w}], B[{step.weights!r}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {step.act == 'relu'}, {residual_args(step)}{extra})")


STRATEGY = Strategy("gemm1x1", "conv1x1", "1x1 stride-1 conv as one GEMM on the input in place", _eligible, _cost,
                    lambda step, sh, scratch: call_line("conv1x1", step, sh))
