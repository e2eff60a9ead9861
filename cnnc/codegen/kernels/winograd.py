"""Winograd's minimal filtering F(2x2, 3x3) for stride-1 3x3 convolutions (Lavin & Gray 2015).

Each 2x2 output tile is ``A^T [ (G g G^T) * (B^T d B) ] A``: 16 multiplies per channel pair instead of 36, done as
16 GEMMs ``U[i] (K, C) @ V[i] (C, tiles)`` through BLAS. ``U = G g G^T`` is computed once when the Model is built
(``_winograd_weights``). The transforms only add and subtract (and halve, in ``G``), so the error stays near that of
a direct float32 sum: measured below 1e-5 relative on every eligible conv of ``archs/`` (``tests/test_kernels.py``),
well inside the 1e-4 bound. F(4x4, 3x3) would save more multiplies but its transforms carry larger constants
(up to 8x), which grows the error by about an order of magnitude; it is not offered.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args

#: largest (16, channels, tiles) scratch, in elements, for one band of tile rows
BAND_ELEMENTS = 1 << 20
#: cost of a transform element relative to a plain copy (16 scattered writes per tile and channel). Fitted with
#: GEMM_HALF to benchmarks/kernels.py at batch 1 and 8 (every eligible conv shape of archs/): Winograd ties im2col
#: on 64-channel 3x3 convs (transforms dominate when the GEMMs are small) and wins by 1.2-3x from ~100 channels
TRANSFORM_FACTOR = 4.0


def tiles(sh: ConvShape) -> tuple[int, int]:
    """``(tile rows, tiles per row)`` of the output."""
    return (sh.Ho + 1) // 2, (sh.Wo + 1) // 2


def band(sh: ConvShape) -> int:
    """Tile rows per product: as many as fit :data:`BAND_ELEMENTS` (at least one)."""
    _, tw = tiles(sh)
    return max(1, BAND_ELEMENTS // (16 * max(sh.C, sh.K) * tw))


def _eligible(sh: ConvShape) -> str | None:
    if sh.k != 3 or sh.s != 1:
        return "needs a 3x3 kernel and stride 1"
    if sh.G != 1:
        return "needs groups=1"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    th, tw = tiles(sh)
    per_image = th * tw
    p = min(band(sh) * tw, per_image * n)  # tiles per product (small images share one)
    gemm = 16 * gemm_seconds(sh.K, p, sh.C) * per_image / p
    transforms = TRANSFORM_FACTOR * 16 * (sh.C + sh.K) * per_image / MOVE_RATE
    return gemm + transforms


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    x = step.inputs[0]
    out = step.output
    _, tw = tiles(sh)
    b = band(sh)
    scratch["cols"] = max(scratch["cols"], 16 * sh.C * b * tw)
    scratch["tmp"] = max(scratch["tmp"], 16 * sh.K * b * tw)
    return (f"winograd({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{_key(step)!r}], B[{step.weights!r}], "
            f"{out.buffer}, {out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, {b}, scratch)")


def _key(step) -> str:
    return f"{step.weights}#winograd"


def _transform(step, sh: ConvShape) -> tuple[str, str]:
    return _key(step), f"_winograd_weights(self.W[{step.weights!r}], {sh.K}, {sh.C})"


STRATEGY = Strategy("winograd", "winograd", "Winograd F(2x2,3x3), stride-1 3x3 convs", _eligible, _cost, _call,
                    _transform)
