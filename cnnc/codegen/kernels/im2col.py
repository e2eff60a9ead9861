"""im2col + one BLAS GEMM per group: the strategy every convolution can use.

Columns of the input (``C/G*k*k`` rows, one column per output pixel) are gathered per tile of output rows and
multiplied by the weights; small images are grouped into one product at batch > 1; a 1x1 stride-1 unpadded conv
multiplies the input in place when one tile covers the image. Costs the gather (one write per column element)
and a GEMM per group, which is what makes it slow on grouped convs with few channels per group (depthwise).
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args, weight_seconds

#: largest tile (elements of its columns and of its GEMM output together) before a conv is split into tiles of
#: output rows: a tile's columns are written, packed and multiplied, and its output written and read back by the
#: epilogue, within one core's L2 (measured on a 2-core AMD EPYC, 2 threads: MobileNet's 3x3/2 first conv 0.25 ms
#: in 10-row tiles against 0.30 in one, VGG16's first 1.6 against 1.9 ms at batch 1, 14.2 against 16.6 at batch 8:
#: with 3 input channels the GEMM output, not the columns, is the larger part)
TILE_ELEMENTS = 1 << 16
#: but at least this many output pixels per tile: thinner GEMMs lose more to BLAS's fixed costs than the cache
#: saves (NiN's 11x11/4 first conv: 2.4 ms in 3-row tiles of 162 pixels, 1.3-1.4 in 6-13-row tiles)
TILE_PIXELS = 512
#: a 1x1 stride-1 unpadded conv whose input has at most this many elements is one tile (no copy: the GEMM reads
#: the input in place); a larger one is tiled like the others
DIRECT_ELEMENTS = 1 << 19
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
    if sh.k == 1 and sh.s == 1 and sh.p == 0:  # in one tile the GEMM multiplies the input in place
        rows = DIRECT_ELEMENTS // (r * sh.Wo)
    else:
        rows = max(TILE_ELEMENTS // ((r + kg) * sh.Wo), -(-TILE_PIXELS // sh.Wo))
    rows = max(1, min(sh.Ho, rows))
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


STRATEGY = Strategy("im2col", "conv2d", "im2col + GEMM per group (any conv)", _eligible, _cost, _call,
                    needs=("gather",))
