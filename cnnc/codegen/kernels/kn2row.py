"""kn2row: a stride-1 convolution as one GEMM per window tap on the padded input, no im2col.

im2col copies the input k*k times (a 5x5 conv on 192 channels: 4,800 rows of columns per pixel) and then multiplies;
when the filters are few (the lecture's 5x5 conv: 32), that copy and the long, thin product it feeds dominate. kn2row
lays the input out once, channels-last and zero-padded, and runs k*k products ``(pixels, C) @ (C, K)``, each on a
shifted block of rows of that one copy (output rows ``W + 2p`` wide, the extra columns never written out), summing
them in a small accumulator. Measured on 192x28x28 -> 32 5x5 (one thread, batch 1): 4.2 ms against 18-23 ms for
im2col.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args, weight_seconds

#: the product's cost relative to the cost model's GEMM estimate (see _cost)
CACHE_FACTOR = 0.6
#: largest band of output rows (wide pixels x filters) one accumulator holds
ACC_ELEMENTS = 1 << 18


def band_rows(sh: ConvShape) -> int:
    """Output rows per band: as many as keep ``wide pixels x K`` within :data:`ACC_ELEMENTS` (at least one)."""
    return max(1, min(sh.Ho, ACC_ELEMENTS // ((sh.W + 2 * sh.p) * sh.K)))


def _eligible(sh: ConvShape) -> str | None:
    if sh.s != 1 or sh.k < 2:
        return "needs stride 1 and a kernel larger than 1x1"
    if sh.G != 1:
        return "needs groups=1"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    wp = sh.W + 2 * sh.p
    wide = sh.Ho * wp
    taps = sh.k * sh.k
    bands = -(-sh.Ho // band_rows(sh))  # each band packs the tap weights again
    # the products read one padded copy of the input that stays in cache, where im2col's product streams a column
    # matrix k*k times the input's size from memory: measured 1.1-2x faster than im2col on every 5x5 conv of archs/
    # (one thread, batch 1 and 8), hence CACHE_FACTOR on the product from 5x5 up. On 3x3 convs with many filters
    # it measured 1.4-2.6x slower than im2col and Winograd (every tap repacks a (C, K) weight): no bonus there
    factor = CACHE_FACTOR if sh.k >= 5 else 1.0
    gemm = factor * taps * gemm_seconds(wide, sh.K, sh.C) + weight_seconds(taps * sh.C * sh.K, bands)
    # the channels-last padded copy, and the accumulation of k*k partial products (in cache, vectorised over the
    # filters: a quarter of a copy's cost per element, fitted to benchmarks/kernels.py on the 5x5 convs of archs/)
    moves = (sh.H + 2 * sh.p) * wp * sh.C + taps * wide * sh.K / 4
    return gemm + moves / MOVE_RATE


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    x = step.inputs[0]
    out = step.output
    wp = sh.W + 2 * sh.p
    nb = band_rows(sh)
    scratch["cols"] = max(scratch["cols"], ((nb + sh.k - 1) * wp + sh.k) * sh.C)
    scratch["tmp"] = max(scratch["tmp"], 2 * nb * wp * sh.K)
    return (f"kn2row({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{_key(step)!r}], B[{step.weights!r}], "
            f"{out.buffer}, {out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, {nb}, scratch)")


def _key(step) -> str:
    return f"{step.weights}#kn2row"


def _transform(step, sh: ConvShape) -> tuple[str, str]:
    return _key(step), f"_kn2row_weights(self.W[{step.weights!r}], {sh.K}, {sh.C}, {sh.k})"


STRATEGY = Strategy("kn2row", "kn2row", "a GEMM per window tap on the padded input (stride 1, no im2col)",
                    _eligible, _cost, _call, _transform)
