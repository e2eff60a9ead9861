"""Winograd's minimal filtering F(m x m, 3x3) for stride-1 3x3 convolutions (Lavin & Gray 2015), m = 2 or 4.

Each m x m output tile is ``A^T [ (G g G^T) * (B^T d B) ] A`` over an (m+2) x (m+2) input window: (m+2)^2
multiplies per channel pair instead of 9 m^2 (F(2x2): 16 for 36, 2.25x fewer; F(4x4): 36 for 144, 4x fewer), done
as (m+2)^2 GEMMs ``U[i] (K, C) @ V[i] (C, tiles)`` through BLAS. ``U = G g G^T`` is computed once when the Model is
built (``_winograd_weights``, float64). The transforms are vectorised passes over whole rows of tiles.

Error (``tests/test_kernels.py``, every eligible conv of ``archs/`` against float64, largest difference relative
to the largest output): F(2x2) below 1e-6, like a direct float32 sum; F(4x4)'s larger constants (up to 8 in A,
5 in B, 1/24 in G) give about 10x more, measured below 2e-5 on every shape, inside the 1e-4 bound of a module.
Both are offered; the cost model takes F(4x4) where its fewer multiplies pay for its larger transforms.
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial
from typing import Any

from . import MOVE_RATE, ConvShape, Strategy, gemm_seconds, residual_args, weight_seconds

#: largest ((m+2)^2, channels, tiles) scratch, in elements, for one band of tile rows
BAND_ELEMENTS = 1 << 20
#: cost of a transform element relative to a plain copy. The transforms are vectorised loops over whole tile rows
#: (one pass per non-zero coefficient): measured with benchmarks/kernels.py, F(2x2) beats im2col on 64-channel
#: 3x3 convs of large images too (VGG16's first stage, 2.3x at batch 8)
TRANSFORM_FACTOR = 1.0
#: non-zero coefficients per transformed element (B^T, A^T rows), which is what a transform pass costs
TERMS = {2: 2.0, 4: 3.7}


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


def kernel_terms(m: int) -> dict[str, Any]:
    """What ``cpu_kernel_winograd.j2`` renders the F(m x m, 3x3) kernel from: tile size, window, the weight
    transform's G (as floats) and each transform row as a float32 expression (unrolled at compile time)."""
    bt, at = BT[m], AT[m]
    return {"m": m, "A": m + 2, "g": [[float(v) for v in row] for row in G[m]],
            "rows_in": [_lin(r, "d") for r in bt], "cols_in": [_lin(r, "e") for r in bt],
            "rows_out": [_lin(r, "g") for r in at], "cols_out": [_lin(r, "h") for r in at]}


def constants() -> list[int]:
    """The integer weights the transforms multiply by (``_WINO_<n>`` in the module)."""
    return sorted({abs(c) for mat in (*BT.values(), *AT.values()) for row in mat for c in row} - {0, 1})


def tiles(sh: ConvShape, m: int) -> tuple[int, int]:
    """``(tile rows, tiles per row)`` of the output."""
    return -(-sh.Ho // m), -(-sh.Wo // m)


def band(sh: ConvShape, m: int) -> int:
    """Tile rows per product: as many as fit :data:`BAND_ELEMENTS` (at least one); a spare tile per row."""
    _, tw = tiles(sh, m)
    return max(1, BAND_ELEMENTS // ((m + 2) ** 2 * max(sh.C, sh.K) * (tw + 1)))


def _eligible(sh: ConvShape) -> str | None:
    if sh.k != 3 or sh.s != 1:
        return "needs a 3x3 kernel and stride 1"
    if sh.G != 1:
        return "needs groups=1"
    return None


def _cost(m: int, sh: ConvShape, n: int) -> float:
    a2 = (m + 2) ** 2
    th, tw = tiles(sh, m)
    per_image = th * (tw + 1)
    p = min(band(sh, m) * (tw + 1), per_image * n)  # tiles per product (small images share one)
    gemm = a2 * gemm_seconds(sh.K, p, sh.C) * per_image / p
    gemm += weight_seconds(a2 * sh.K * sh.C, per_image / p)  # the GEMMs of a band pack U once
    transforms = TRANSFORM_FACTOR * TERMS[m] * a2 * (sh.C + sh.K) * per_image / MOVE_RATE
    return gemm + transforms


def _call(m: int, step, sh: ConvShape, scratch: dict[str, int]) -> str:
    x = step.inputs[0]
    out = step.output
    _, tw = tiles(sh, m)
    b = band(sh, m)
    scratch["cols"] = max(scratch["cols"], (m + 2) ** 2 * sh.C * b * (tw + 1))
    scratch["tmp"] = max(scratch["tmp"], (m + 2) ** 2 * sh.K * b * (tw + 1))
    return (f"winograd{m}({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{_key(m, step)!r}], "
            f"B[{step.weights!r}], {out.buffer}, {out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.p}, "
            f"{step.act == 'relu'}, {residual_args(step)}, {b}, scratch)")


def _key(m: int, step) -> str:
    return f"{step.weights}#{NAMES[m]}"


def _transform(m: int, step, sh: ConvShape) -> tuple[str, str]:
    return _key(m, step), f"_winograd{m}_weights(self.W[{step.weights!r}], {sh.K}, {sh.C})"


#: strategy name of each tile size
NAMES = {2: "winograd", 4: "winograd4"}

STRATEGIES = tuple(
    Strategy(NAMES[m], "winograd", f"Winograd F({m}x{m},3x3), stride-1 3x3 convs", _eligible, partial(_cost, m),
             partial(_call, m), partial(_transform, m))
    for m in (2, 4))
