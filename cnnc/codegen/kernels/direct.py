"""A direct convolution for few input channels: phase planes and register blocks, no im2col.

A network's first conv (3 input channels, a 3x3 to 11x11 window, often strided) has few rows of im2col columns
(27 to 363) per output pixel, so the gather writes as many elements as the product reads and costs as much.
Here each input channel is split once per image into ``s*s`` zero-padded phase planes (what the depthwise kernel
does), after which every tap of the window, for a row of output pixels, is one contiguous stretch of one plane:
the register blocks of :mod:`.direct1x1` read the taps there through a table of offsets, a row of output pixels
at a time (or a band of rows, where a row fills the blocks' vectors badly), and store into the output with bias,
residual and ReLU. Ungrouped convs on at most
:data:`MAX_CHANNELS` input channels.
"""

from __future__ import annotations

from . import MOVE_RATE, ConvShape, Strategy, residual_args
from .direct1x1 import arithmetic_seconds, weight_read_seconds

#: the planes of this many input channels (and their taps' offsets) are cheap next to the product
MAX_CHANNELS = 4
#: elements of the output band a thread's scratch holds after its planes (128 KiB: it stays in L2 beside them), so
#: that rows of output pixels which fill the register blocks badly can run as one product (``_direct_band``)
BAND_ELEMENTS = 1 << 15


def planes_elements(sh: ConvShape) -> int:
    """Elements of one image's phase planes (each thread's scratch)."""
    e = (sh.k - 1) // sh.s
    return sh.C * sh.s * sh.s * (sh.Ho + e) * (sh.Wo + e)


def _pitch(sh: ConvShape) -> int:
    """Elements of a phase plane's row: an output row and the ``(k-1)//s`` columns its window reaches past it."""
    return sh.Wo + (sh.k - 1) // sh.s


def band_rows(sh: ConvShape) -> int:
    """The most output rows (of every channel, at the planes' pitch) :data:`BAND_ELEMENTS` hold; at least 1."""
    return max(1, min(sh.Ho, BAND_ELEMENTS // (sh.K * _pitch(sh))))


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != 1:
        return "needs groups=1"
    if sh.C > MAX_CHANNELS:
        return f"needs at most {MAX_CHANNELS} input channels (a first conv)"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    r = sh.C * sh.k * sh.k
    rows = sh.Ho * (arithmetic_seconds(sh.K, sh.Wo, r) + weight_read_seconds(sh.K, sh.Wo, r))
    return rows + planes_elements(sh) / MOVE_RATE


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    rows = band_rows(sh)
    band = sh.K * rows * _pitch(sh) if rows > 1 else 0
    scratch["cols"] = max(scratch["cols"], planes_elements(sh) + band)
    x = step.inputs[0]
    out = step.output
    nm = repr(step.weights)
    return (f"conv2d_direct({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{nm}], B[{nm}], {out.buffer}, "
            f"{out.offset}, {sh.K}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, {rows}, scratch)")


STRATEGY = Strategy("direct", "blocks", "direct conv on few input channels: phase planes + register blocks",
                    _eligible, _cost, _call, needs=("planes",))
