"""1x1 stride-1 unpadded convolutions in register blocks, without BLAS.

A block of output channels x pixels (8 x 48 where LLVM targets AVX-512, 4 x 24 on AVX2) is summed in vector
registers over the input channels, reading the weights and the NCHW input where they lie, and stored once with bias,
residual and ReLU applied: no packing of either operand (what BLAS spends most on when the input has few channels)
and no pass of the epilogue over the output. Pixels past a multiple of the block are masked lanes, so the block
wastes lanes on small images: 49 pixels (7x7) fill 49 of 64 lanes. At batch 1 the threads split the output channels
in whole blocks. :mod:`.im2col_blocked` runs the same blocks on im2col columns.
"""

from __future__ import annotations

from . import GEMM_PEAK, ConvShape, Strategy
from .gemm1x1 import _eligible, call_line

#: pixels and output channels of the register block the cost model assumes (the AVX-512 one)
BLOCK_PIXELS = 48
LANES = 16
BLOCK_ROWS = 8
#: the blocks' arithmetic rate on full lanes relative to the BLAS ceiling (GEMM_PEAK), and the weight elements per
#: second they read (every block of pixels reads its channels' weights again): fitted to the 51 1x1 shapes of
#: archs/ timed at batch 1 and 8 against gemm1x1 and im2col (2-core AMD EPYC, 2 threads): the model then picks the
#: fastest of the three on 49 and is 0.3% slower than the fastest on average. Measured direct1x1 / gemm1x1 (mean of
#: batch 1 and 8 per image): 0.63-0.91 on 28x28 and larger images, 0.76-0.97 on 14x14; on 7x7 0.91-1.02 at batch 1,
#: and im2col, which multiplies the columns of several 7x7 images at once, is 4-12% faster at batch 8
RATE = 1.1
WEIGHT_READ_RATE = 8e9


def lanes(m: int) -> int:
    """Vector lanes the blocks of an ``m``-pixel image cost: whole blocks, then the rest in one more block, or, when
    it fits one vector, in a block a vector wider than the last whole one (the kernel's wide block, as fast per
    lane); with no whole block before it, a block one vector wide, counted twice (it loads a weight per
    multiply-add, so it runs at about half the rate)."""
    full, rest = divmod(m, BLOCK_PIXELS)
    if rest == 0:
        return m
    if rest > LANES:
        return (full + 1) * BLOCK_PIXELS
    return full * BLOCK_PIXELS + (LANES if full else 2 * LANES)


def arithmetic_seconds(k: int, m: int, c: int) -> float:
    """Estimated time of the blocks' multiply-adds for ``k`` output channels, ``m`` pixels and ``c`` input rows."""
    return 2.0 * k * lanes(m) * c / (GEMM_PEAK * RATE)


def weight_read_seconds(k: int, m: int, c: int) -> float:
    """Estimated time of reading the ``k x c`` weights once per block of pixels."""
    return k * c * -(-m // BLOCK_PIXELS) / WEIGHT_READ_RATE


def _cost(sh: ConvShape, n: int) -> float:
    m = sh.Ho * sh.Wo
    return arithmetic_seconds(sh.K, m, sh.C) + weight_read_seconds(sh.K, m, sh.C)


STRATEGY = Strategy("direct1x1", "blocks", "1x1 stride-1 conv in register blocks on NCHW, no BLAS", _eligible,
                    _cost, lambda step, sh, scratch: call_line("direct1x1", step, sh))
