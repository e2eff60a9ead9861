"""im2col + one BLAS GEMM per group: the strategy every convolution can use.

Columns of the input (``C/G*k*k`` rows, one column per output pixel) are gathered per tile of output rows and
multiplied by the weights; small images are grouped into one product at batch > 1; a 1x1 stride-1 unpadded conv
multiplies the input in place when one tile covers the image. Costs the gather (one write per column element)
and a GEMM per group, which is what makes it slow on grouped convs with few channels per group (depthwise).
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args, weight_seconds

#: largest im2col tile (elements) before a conv is split into tiles of output rows
TILE_ELEMENTS = 1 << 19
#: scratch (elements) for grouping the columns of several small images into one GEMM
GROUP_ELEMENTS = 1 << 20
#: images with fewer output pixels than this are grouped at batch > 1 (see the kernel)
GROUP_PIXELS = 1024


def tiles(sh: ConvShape) -> tuple[int, int, int]:
    """``(rows per tile, im2col elements, tmp elements)`` of a conv.

    The scratch covers a tile of ``rows`` output rows even when one tile covers the image: at batch 1 the
    threads split the image into bands of rows, and a band is gathered and multiplied through the scratch."""
    r = (sh.C // sh.G) * sh.k * sh.k
    kg = sh.K // sh.G
    if sh.Ho * sh.Wo < GROUP_PIXELS:
        return sh.Ho, max(r * sh.Ho * sh.Wo, GROUP_ELEMENTS), max(kg * sh.Ho * sh.Wo, GROUP_ELEMENTS)
    rows = max(1, min(sh.Ho, TILE_ELEMENTS // (r * sh.Wo)))
    return rows, r * rows * sh.Wo, kg * rows * sh.Wo


def _eligible(sh: ConvShape) -> str | None:
    return None


def _cost(sh: ConvShape, n: int) -> float:
    r = (sh.C // sh.G) * sh.k * sh.k
    kg = sh.K // sh.G
    m = sh.Ho * sh.Wo
    cols = m * n if (m < GROUP_PIXELS and n > 1) else m  # small images are grouped into one product
    gemm = sh.G * gemm_seconds(kg, cols, r) * m / cols
    rows = tiles(sh)[0]
    passes = 1.0 / n if cols > m else -(-sh.Ho // rows)  # BLAS calls per image, each packing the weights
    gemm += weight_seconds(sh.K * r, passes)
    # a 1x1 stride-1 conv multiplies the input in place when one tile covers the image, unless images are grouped
    direct = sh.k == 1 and sh.s == 1 and sh.p == 0 and rows >= sh.Ho and cols == m
    gather = 0.0 if direct else sh.G * r * m / MOVE_RATE
    return gemm + gather + sh.K * m / MOVE_RATE


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    x = step.inputs[0]
    out = step.output
    rows, ncols, ntmp = tiles(sh)
    scratch["cols"] = max(scratch["cols"], ncols)
    scratch["tmp"] = max(scratch["tmp"], ntmp)
    relu = step.act == "relu"
    epilogue = bool(step.attrs.get("has_bias", True) or relu or step.op.get("residual"))
    nm = repr(step.weights)
    return (f"conv2d({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, {out.offset}, "
            f"{sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {sh.G}, {epilogue}, {relu}, {residual_args(step)}, "
            f"{rows}, scratch)")


STRATEGY = Strategy("im2col", "conv2d", "im2col + GEMM per group (any conv)", _eligible, _cost, _call)
