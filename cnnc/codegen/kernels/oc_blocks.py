"""Register blocks vectorised over output channels, for small images: ``direct1x1_oc`` and ``im2col_oc``.

direct1x1's blocks spread pixels over the vector lanes, so a 7x7 image's 49 pixels fill 49 of 64 lanes and a
13x13 image's 169 fill 169 of 192. These blocks spread output channels instead, as ONNX Runtime's NCHWc kernels
do: 3 vectors of 16 output channels x 7 pixels where LLVM targets AVX-512 (2 x 8 channels x 5 pixels on AVX2),
each pixel's input broadcast, the weights read from panels of 48 channels packed once in ``Model`` (channel
fastest, so each input row is 3 vector loads), and the sums put into the NCHW output with bias, residual and ReLU:
staged with the channels in the lanes, then transposed in registers into each channel's row 16 pixels at a time
(a scatter of each vector of sums had cost 10-35% on 1x1 convs with few input channels). Lanes are then full
whenever the output channels are a multiple of 48 (or nearly), whatever the image.
``direct1x1_oc`` reads a 1x1 conv's input as it lies; ``im2col_oc`` gathers a whole image's columns first (so it is
offered only where they fit :data:`MAX_COLUMNS`). At batch 1 the threads split the panels.
"""

from __future__ import annotations

from . import GEMM_PEAK, MOVE_RATE, ConvShape, Strategy, layout_args, residual_args
from .gemm1x1 import _eligible as _eligible_1x1
from .gemm1x1 import call_line
from .im2col_blocked import _eligible as _eligible_ungrouped

#: pixels and output channels of a block (the AVX-512 one: what the cost model assumes)
PIXELS = 7
WIDTH = 48
#: arithmetic rate on full lanes relative to the BLAS ceiling (GEMM_PEAK), and the seconds each block spends putting its
#: sums into the output (fitted when they were scattered into NCHW, not refitted since): fitted to the 58 ungrouped conv
#: shapes of archs/ with images of 14x14 or fewer pixels, timed at batch 1 and 8 against the other eligible strategies
#: (2-core AMD EPYC, 2 threads); the model then picks the fastest on 52 and is 0.3% slower than the fastest on average.
#: Measured (ms per image, batch 1): ResNet-50's 2048->512 1x1 conv on 7x7, 1.09 against im2col's 1.31; its 512x7x7 3x3
#: stride-2 conv, 1.58 against 1.94; GoogLeNet's 192->384 3x3 on 7x7, 0.48 against 0.57. On 14x14 1x1 convs direct1x1
#: stays ahead at batch 1 (by 0-15%)
RATE = 1.1
BLOCK_STORE = 4e-7
#: largest image the whole-image gather of im2col_oc may take (elements of its columns: 4 MiB)
MAX_COLUMNS = 1 << 20


def blocks(k: int, m: int) -> int:
    """Blocks of ``k`` output channels x ``m`` pixels."""
    return -(-k // WIDTH) * -(-m // PIXELS)


def product_seconds(k: int, m: int, r: int) -> float:
    """Estimated time of the blocks for ``k`` output channels, ``m`` pixels and ``r`` input rows: the multiply-adds
    on the lanes the blocks cost (whole panels, whole blocks of pixels) and the scatter of each block."""
    n = blocks(k, m)
    return 2.0 * n * WIDTH * PIXELS * r / (GEMM_PEAK * RATE) + n * BLOCK_STORE


def _cost_1x1(sh: ConvShape, n: int) -> float:
    if wide_panels(sh):
        return wide_product_seconds(sh.K, sh.Ho * sh.Wo, sh.C)
    return product_seconds(sh.K, sh.Ho * sh.Wo, sh.C)


def _eligible_im2col(sh: ConvShape) -> str | None:
    if (why := _eligible_ungrouped(sh)) is not None:
        return why
    if sh.C * sh.k * sh.k * sh.Ho * sh.Wo > MAX_COLUMNS:
        return f"needs an image whose columns fit {MAX_COLUMNS} elements (a small one)"
    return None


def _cost_im2col(sh: ConvShape, n: int) -> float:
    # the panels the kernel runs, except where a Winograd variant can run the conv: there the panels of 48 whatever
    # runs, since the wide panels' estimate, fitted on 1x1 convs, made im2col_oc the choice on 3x3 and 5x5 convs where
    # Winograd stays faster (64x10x10 -> 128 at batch 8: 1.10 ms against 0.93; GoogLeNet's 24x14x14 -> 64 5x5 at batch
    # 1: 0.190 against 0.098). Strided convs have no Winograd: there the wide panels priced as they run make im2col_oc
    # the choice over im2col_blocked (one thread, batch 2, another process doing the same on the other core, ms per
    # image: ResNet-50's 128x56x56 -> 128 3x3/2 2.41 against 2.68-2.75, 256x56x56 -> 512 1x1/2 2.12-2.14 against
    # 2.26-2.33, 256x28x28 -> 256 3x3/2 2.28-2.30 against 2.44-2.46; ResNet-18's 64x56x56 -> 128 3x3/2 1.20-1.22
    # against 1.31-1.34; the one it loses, 128x28x28 -> 256 1x1/2, 0.143 against 0.137)
    r = sh.C * sh.k * sh.k
    m = sh.Ho * sh.Wo
    if wide_panels(sh) and not _winograd_eligible(sh):
        return wide_product_seconds(sh.K, m, r) + r * m / MOVE_RATE
    return product_seconds(sh.K, m, r) + r * m / MOVE_RATE


def _winograd_eligible(sh: ConvShape) -> bool:
    from .winograd import STRATEGIES as WINOGRAD

    return any(w.eligible(sh) is None for w in WINOGRAD)


#: the wide panels both strategies may run instead (the kernel's ``_OC_WIDE_*``, AVX-512): 4 vectors of 16 channels x
#: 6 pixels, for output channels in whole panels of 64. ``im2col_oc`` runs them on its columns as ``direct1x1_oc``
#: on a 1x1 conv's input (NiN's mlp4 3x3 on 6x6 at batch 1: 0.87x the time of the panels of 48), but the cost model
#: prices its panels of 48 (see _cost_im2col)
WIDE_WIDTH = 64
WIDE_PIXELS = 6


#: the least share of a wide block's pixel slots an image must fill (49 pixels fill 49 of 54, 91%)
WIDE_FILL = 0.98
#: the wide blocks' arithmetic rate (relative to GEMM_PEAK) and the seconds each spends putting its 24 vectors of
#: sums into the output: fitted (least squares of the log error, rms 4%, at most 7-14%) to the 29 1x1 shapes of archs/
#: whose output channels fill wide panels, timed in NCHW at batch 1 and 8 against direct1x1 and gemm1x1 (2-core AMD
#: EPYC, 2 threads; benchmarks/fit_wide_1x1.py, twice: 1.112 and 2.4e-7, 1.110 and 2.9e-7). Over all 51 1x1 shapes the
#: model then picks the fastest of the three on 41-44 and is 1.0-1.1% slower than the fastest on average (1.2-1.5% with
#: the constants before). The store cost is that of the staged NCHW output (_oc_blocks_nchw); a scatter per vector of
#: sums had cost 5.7e-7 a block. Wide blocks win where many input channels pay for the store (1024->256 on 14x14:
#: 0.90x direct1x1's time; 256->64 on 56x56: 0.92x) and lose where few do (64->256 on 56x56: 1.19x)
WIDE_RATE = 1.11
WIDE_BLOCK_STORE = 2.6e-7


def wide_panels(sh: ConvShape) -> bool:
    """Whether a conv runs the wide panels: its output channels fill them, and its pixels fill at least WIDE_FILL
    of their blocks of 6. Measured (two threads, batch 8, GFLOP/s, wide against 48 x 7, NCHW): 128->128 on 56x56
    134 against 120, 256->64 139 against 104, 256->256 on 28x28 175 against 167; GoogLeNet's 832->256 on 7x7 took
    1.10 ms against 0.96 (its 9th block of 6 pixels holds one), where the default's narrow last panel (16 of 48
    channels) wastes nothing."""
    if sh.K % WIDE_WIDTH:
        return False
    m = sh.Ho * sh.Wo
    return m >= WIDE_FILL * (-(-m // WIDE_PIXELS) * WIDE_PIXELS)


def wide_product_seconds(k: int, m: int, r: int, rate: float = WIDE_RATE, store: float = WIDE_BLOCK_STORE) -> float:
    """:func:`product_seconds` for the wide blocks (``k`` output channels in panels of WIDE_WIDTH), at ``rate`` and
    ``store`` (the fitted constants by default; benchmarks/fit_wide_1x1.py passes its own)."""
    n = -(-k // WIDE_WIDTH) * -(-m // WIDE_PIXELS)
    return 2.0 * n * WIDE_WIDTH * WIDE_PIXELS * r / (GEMM_PEAK * rate) + n * store


def _key(step, wide: bool = False) -> str:
    return f"{step.weights}#oc" + ("64" if wide else "")


def _transform(step, sh: ConvShape) -> tuple[str, str]:
    """The weight packed into panels: wide ones where :func:`wide_panels` (under their own key)."""
    if not wide_panels(sh):
        return _key(step), f"_oc_panels(self.W[{step.weights!r}], {sh.K})"
    return _key(step, True), f"_oc_panels(self.W[{step.weights!r}], {sh.K}, True)"


def _wide_arg(sh: ConvShape) -> str:
    return ", wide=True" if wide_panels(sh) else ""


def _call_1x1(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    return call_line("direct1x1_oc", step, sh, _key(step, wide_panels(sh)), layout_args(step) + _wide_arg(sh))


def _call_im2col(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    scratch["cols"] = max(scratch["cols"], sh.C * sh.k * sh.k * sh.Ho * sh.Wo)
    x = step.inputs[0]
    out = step.output
    key = _key(step, wide_panels(sh))
    return (f"conv2d_oc({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{key!r}], B[{step.weights!r}], "
            f"{out.buffer}, {out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, scratch{layout_args(step)}{_wide_arg(sh)})")


STRATEGIES = (
    Strategy("direct1x1_oc", "blocks", "1x1 stride-1 conv in register blocks over output channels (small images)",
             _eligible_1x1, _cost_1x1, _call_1x1, _transform),
    Strategy("im2col_oc", "blocks", "im2col + register blocks over output channels (small images), ungrouped",
             _eligible_im2col, _cost_im2col, _call_im2col, _transform, needs=("gather",)),
)
