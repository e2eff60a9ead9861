"""Winograd's minimal filtering F(m x m, r x r) for stride-1 convolutions (Lavin & Gray 2015): F(2x2, 3x3) and
F(4x4, 3x3) for 3x3 kernels, F(2x2, 5x5) for 5x5.

Each m x m output tile is ``A^T [ (G g G^T) * (B^T d B) ] A`` over an a x a input window, a = m + r - 1: a^2
multiplies per channel pair instead of r^2 m^2 (F(2x2, 3x3): 16 for 36, 2.25x fewer; F(4x4, 3x3): 36 for 144, 4x;
F(2x2, 5x5): 36 for 100, 2.8x), done as a^2 GEMMs ``U[i] (K, C) @ V[i] (C, tiles)`` in the register blocks of
:mod:`.direct1x1`, which read U and V where they lie (BLAS, which packs both, ran them at half the blocks' rate on a
Zen 5 EPYC). ``U = G g G^T`` is computed once when the Model is built (``_winograd<m>_weights``, float64). The
transforms are vectorised passes over whole rows of tiles. F(4x4, 3x3) and F(2x2, 5x5) interpolate at the same points
(0, +-1, +-2, infinity), so they share the input transform B^T.

Error (``tests/test_kernels.py``, every eligible conv of ``archs/`` against float64, largest difference relative
to the largest output): F(2x2, 3x3) below 1e-6, like a direct float32 sum; the 6x6 transforms' larger constants (up
to 8 in A, 5 in B, 1/24 in G) give about 10x more, measured below 2e-5 on every shape, inside the 1e-4 bound of a
module. The cost model takes the variant whose fewer multiplies pay for its larger transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any

from . import MOVE_RATE, ConvShape, Strategy, residual_args
from .direct1x1 import arithmetic_seconds, weight_read_seconds

#: tiles per product the bands aim at: one block of the GEMMs' register blocks four vectors wide (direct1x1's wide
#: block, 4 output channels x 64 pixels). Measured with the GEMMs in register blocks (2-core Zen 5 EPYC, ms per image
#: at batch 8, one thread): F(4x4) on 128x28x28 -> 128, 8 tile rows of 8 tiles 0.59, 7 rows 0.61, 6 rows 0.75, 9 rows
#: 0.90, 12 rows 0.73; two threads, 256x28x28 -> 512 by F(4x4) in 8 tile rows 2.2 against 4.0 through BLAS. Larger
#: products (the bands had held up to 1 Mi elements of V for BLAS to pack U once per band) left V and the products in
#: L3 between the transforms and the GEMMs
BAND_TILES = 64
#: cost of a transform element relative to a plain copy. The transforms are vectorised loops over whole tile rows
#: (one pass per non-zero coefficient): measured with benchmarks/kernels.py, F(2x2) beats im2col on 64-channel
#: 3x3 convs of large images too (VGG16's first stage, 2.3x at batch 8)
TRANSFORM_FACTOR = 1.0
#: the transforms of F(m x m, 3x3) (Lavin & Gray 2015, section 4): G (filter), B^T (input), A^T (output)
G = {
    2: ((1, 0, 0), (Fraction(1, 2), Fraction(1, 2), Fraction(1, 2)), (Fraction(1, 2), Fraction(-1, 2), Fraction(1, 2)),
        (0, 0, 1)),
    4: ((Fraction(1, 4), 0, 0), (Fraction(-1, 6), Fraction(-1, 6), Fraction(-1, 6)),
        (Fraction(-1, 6), Fraction(1, 6), Fraction(-1, 6)), (Fraction(1, 24), Fraction(1, 12), Fraction(1, 6)),
        (Fraction(1, 24), Fraction(-1, 12), Fraction(1, 6)), (0, 0, 1)),
}
BT = {
    2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0),
        (0, 4, 0, -5, 0, 1)),
}
AT = {
    2: ((1, 1, 1, 0), (0, 1, -1, -1)),
    4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
}
#: F(2x2, 5x5) on F(4x4, 3x3)'s points 0, 1, -1, 2, -2 and infinity (the same 6x6 B^T): G's row for point q is
#: F(4x4, 3x3)'s scale c_q times (1, q, q^2, q^3, q^4), and A^T evaluates the two outputs (powers 0 and 1 of q)
_POINTS = ((Fraction(1, 4), 0), (Fraction(-1, 6), 1), (Fraction(-1, 6), -1), (Fraction(1, 24), 2),
           (Fraction(1, 24), -2))
G5 = tuple(tuple(c * Fraction(q) ** i for i in range(5)) for c, q in _POINTS) + ((0, 0, 0, 0, 1),)
AT5 = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 1))


@dataclass(frozen=True)
class Variant:
    """One F(m x m, r x r): its strategy ``name`` and the suffix ``key`` of its kernels' names."""

    name: str
    key: str
    m: int
    r: int

    @property
    def a(self) -> int:
        """Input tile side: m + r - 1."""
        return self.m + self.r - 1

    @property
    def spare(self) -> int:
        """Spare tiles at the end of a tile row: window column j of tile t is column j % m of tile t + j // m."""
        return (self.a - 1) // self.m

    def matrices(self) -> tuple[tuple, tuple, tuple]:
        """``(G, B^T, A^T)``."""
        if self.r == 5:
            return G5, BT[4], AT5
        return G[self.m], BT[self.m], AT[self.m]


VARIANTS = (Variant("winograd", "2", 2, 3), Variant("winograd4", "4", 4, 3), Variant("winograd5x5", "2x5", 2, 5))
#: non-zero coefficients per transformed element (B^T, A^T rows), which is what a transform pass costs. F(2x2, 5x5)'s
#: is fitted instead (`cnnc tune` on a 2-core AMD EPYC): with it the model picks the fastest strategy measured on 8
#: of the 10 5x5 shapes of archs/ (the other two within 5% and 1.6x), where 2.7, its count by the rule of the other
#: two, kept kn2row on the lecture's conv5x5 (192x28x28 -> 32: F(2x2, 5x5) 1.6 ms at batch 1, kn2row 3.3, im2col
#: 6.5) and on NiN's mlp2 (7.7 against 13.4 and 11.0)
TERMS = {"2": 2.0, "4": 3.7, "2x5": 1.0}


def _lin(coefs: tuple[int, ...], var: str) -> str:
    """``sum_i coefs[i] * var{i}[t]`` as float32 source: integer weights other than 1 are the float32 constants
    ``_WINO_<n>`` (a Python float would make the loop float64)."""
    out = []
    for i, c in enumerate(coefs):
        if c == 0:
            continue
        term = f"{var}{i}[t]" + (f" * _WINO_{abs(c)}" if abs(c) != 1 else "")
        out.append(("- " if c < 0 else "+ ") + term)
    text = " ".join(out)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def kernel_terms(v: Variant) -> dict[str, Any]:
    """What ``cpu_kernel_winograd.j2`` renders a variant's kernels from: tile sizes, the weight transform's G (as
    floats) and each transform row as a float32 expression (unrolled at compile time)."""
    g, bt, at = v.matrices()
    return {"key": v.key, "m": v.m, "r": v.r, "A": v.a, "spare": v.spare,
            "g": [[float(x) for x in row] for row in g],
            "rows_in": [_lin(row, "d") for row in bt], "cols_in": [_lin(row, "e") for row in bt],
            "rows_out": [_lin(row, "g") for row in at], "cols_out": [_lin(row, "h") for row in at]}


def constants() -> list[int]:
    """The integer weights the transforms multiply by (``_WINO_<n>`` in the module)."""
    mats = [mat for v in VARIANTS for mat in v.matrices()[1:]]
    return sorted({abs(c) for mat in mats for row in mat for c in row} - {0, 1})


def tiles(sh: ConvShape, m: int) -> tuple[int, int]:
    """``(tile rows, tiles per row)`` of the output."""
    return -(-sh.Ho // m), -(-sh.Wo // m)


def band(sh: ConvShape, v: Variant) -> int:
    """Tile rows per product (each with its spare tiles): as many as :data:`BAND_TILES` hold, at least one."""
    _, tw = tiles(sh, v.m)
    return max(1, BAND_TILES // (tw + v.spare))


#: fewest input and output channels per group a grouped conv needs: one GEMM per group and transformed element is
#: what it costs, and depthwise convs (one channel per group) have a kernel of their own
GROUP_CHANNELS = 8


def _eligible(v: Variant, sh: ConvShape) -> str | None:
    if sh.k != v.r or sh.s != 1:
        return f"needs a {v.r}x{v.r} kernel and stride 1"
    if sh.G != 1 and min(sh.C, sh.K) // sh.G < GROUP_CHANNELS:
        return f"needs at least {GROUP_CHANNELS} input and output channels per group"
    return None


def _cost(v: Variant, sh: ConvShape, n: int) -> float:
    a2 = v.a ** 2
    th, tw = tiles(sh, v.m)
    per_image = th * (tw + v.spare)
    p = min(band(sh, v) * (tw + v.spare), per_image * n)  # tiles per product (small images share one)
    k, c = sh.K // sh.G, sh.C // sh.G
    gemm = a2 * sh.G * (arithmetic_seconds(k, p, c) + weight_read_seconds(k, p, c)) * per_image / p
    transforms = TRANSFORM_FACTOR * TERMS[v.key] * a2 * (sh.C + sh.K) * per_image / MOVE_RATE
    return gemm + transforms


def _call(v: Variant, step, sh: ConvShape, scratch: dict[str, int]) -> str:
    x = step.inputs[0]
    out = step.output
    _, tw = tiles(sh, v.m)
    b = band(sh, v)
    scratch["cols"] = max(scratch["cols"], v.a ** 2 * sh.C * b * (tw + v.spare))
    scratch["tmp"] = max(scratch["tmp"], v.a ** 2 * sh.K * b * (tw + v.spare))
    return (f"winograd{v.key}({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{_key(v, step)!r}], "
            f"B[{step.weights!r}], {out.buffer}, {out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.p}, {sh.G}, "
            f"{step.act == 'relu'}, {residual_args(step)}, {b}, scratch)")


def _key(v: Variant, step) -> str:
    return f"{step.weights}#{v.name}"


def _transform(v: Variant, step, sh: ConvShape) -> tuple[str, str]:
    return _key(v, step), f"_winograd{v.key}_weights(self.W[{step.weights!r}], {sh.K}, {sh.C // sh.G})"


STRATEGIES = tuple(
    Strategy(v.name, "winograd", f"Winograd F({v.m}x{v.m},{v.r}x{v.r}), stride-1 {v.r}x{v.r} convs (groups of 8+)",
             partial(_eligible, v), partial(_cost, v), partial(_call, v), partial(_transform, v),
             needs=("blocks",))
    for v in VARIANTS)
