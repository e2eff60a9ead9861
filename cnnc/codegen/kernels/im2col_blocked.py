"""im2col + register blocks: the im2col gather, then the product in direct1x1's register blocks instead of BLAS.

A tile of output rows is gathered into columns (``C*k*k`` rows, one column per output pixel) and multiplied by the
weights in blocks of output channels x pixels summed in vector registers, stored straight into the output with
bias, residual and ReLU applied. What it saves over im2col: BLAS's packing of both operands (the larger part of a
GEMM whose weight matrix has few rows or columns: a first conv's 3-channel windows, a strided conv's few output
pixels) and the GEMM output tile the epilogue reads back. Ungrouped convs only.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, residual_args
from .direct1x1 import BLOCK_PIXELS, arithmetic_seconds, weight_read_seconds

#: largest gathered tile (elements of its columns): it stays in L2 while the register blocks read it
TILE_ELEMENTS = 1 << 16
#: but at least this many output pixels per tile: thinner tiles leave the blocks' last vectors mostly masked
TILE_PIXELS = 4 * BLOCK_PIXELS


def tile_rows(sh: ConvShape) -> int:
    """Output rows per gathered tile."""
    r = sh.C * sh.k * sh.k
    return max(1, min(sh.Ho, max(TILE_ELEMENTS // (r * sh.Wo), -(-TILE_PIXELS // sh.Wo))))


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != 1:
        return "needs groups=1"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    r = sh.C * sh.k * sh.k
    rows = tile_rows(sh)
    full, rest = divmod(sh.Ho, rows)
    tiles = [rows * sh.Wo] * full + ([rest * sh.Wo] if rest else [])
    product = sum(arithmetic_seconds(sh.K, t, r) + weight_read_seconds(sh.K, t, r) for t in tiles)
    return product + r * sh.Ho * sh.Wo / MOVE_RATE  # and the gather


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    rows = tile_rows(sh)
    scratch["cols"] = max(scratch["cols"], sh.C * sh.k * sh.k * rows * sh.Wo)
    x = step.inputs[0]
    out = step.output
    nm = repr(step.weights)
    return (f"conv2d_blocked({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, {rows}, scratch)")


STRATEGY = Strategy("im2col_blocked", "blocks", "im2col + register blocks (no BLAS), ungrouped convs", _eligible,
                    _cost, _call, needs=("gather",))
