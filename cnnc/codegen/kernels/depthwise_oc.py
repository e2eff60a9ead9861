"""Depthwise convolution vectorised over channels, for small images: ``depthwise_oc``.

The direct depthwise kernel (:mod:`.depthwise`) computes one channel at a time, a vectorised loop over its pixels;
on a 7x7 or 14x14 image those loops are short and each channel pays its set-up (MobileNet's 512- and 1024-channel
layers at 14x14 and 7x7). This kernel puts a group of channels in the vector lanes instead, as ONNX Runtime's
NCHWc kernels do: the group's input is gathered, a pixel at a time, into a zero-padded tile (channels fastest),
each output pixel is then ``k*k`` vector multiply-adds with the weights of the group packed once in ``Model``, and
its sums are scattered into the NCHW output with bias, residual and ReLU. Any stride and padding; one output channel
per input channel.
"""

from __future__ import annotations

from . import ConvShape, Strategy, layout_args, residual_args

#: lanes of a group (the AVX-512 vector: what the cost model assumes)
LANES = 16
#: largest tile (padded rows x columns the windows reach x LANES, float32 elements: 4 MiB, a 254x254 image)
MAX_TILE = 1 << 20
#: seconds per group of channels, per input pixel of a group put in the tile, and per tap of an output pixel of a
#: group (its transpose and store included): least squares of the relative error over the 18 depthwise shapes
#: :mod:`.depthwise` was fitted to, timed the same way; within 35% on each, and the model then picks the faster of
#: the two on 16 of them (the other two within 20%). Measured against it, one thread, batch 1: MobileNet's stride-2
#: layers 0.29-0.75x the time, its 14x14 and 7x7 stride-1 ones 0.71 and 0.40x; 28x28 and larger stride-1 images
#: 1.2-1.6x (the direct kernel's in-place rows are long there)
GROUP = 2.1e-7
PIXEL = 2.4e-9
TAP = 7.2e-10


def tile_elements(sh: ConvShape) -> int:
    """Elements of the padded tile a group is gathered into."""
    return ((sh.Ho - 1) * sh.s + sh.k) * ((sh.Wo - 1) * sh.s + sh.k) * LANES


def _eligible(sh: ConvShape) -> str | None:
    if sh.G != sh.C or sh.K != sh.C:
        return "needs groups == input channels == output channels (depthwise, one output channel per input)"
    if tile_elements(sh) > MAX_TILE:
        return f"needs a padded image of at most {MAX_TILE // LANES} pixels"
    return None


def _cost(sh: ConvShape, n: int) -> float:
    groups = -(-sh.C // LANES)
    return groups * (GROUP + sh.H * sh.W * PIXEL + sh.Ho * sh.Wo * sh.k * sh.k * TAP)


def _key(step) -> str:
    return f"{step.weights}#dw"


def _transform(step, sh: ConvShape) -> tuple[str, str]:
    return _key(step), f"_dw_panels(self.W[{step.weights!r}], {sh.C}, {sh.k})"


def _call(step, sh: ConvShape, scratch: dict[str, int]) -> str:
    scratch["cols"] = max(scratch["cols"], tile_elements(sh))
    x = step.inputs[0]
    out = step.output
    return (f"depthwise_oc({x.buffer}, {x.offset}, {sh.C}, {sh.H}, {sh.W}, W[{_key(step)!r}], B[{step.weights!r}], "
            f"{out.buffer}, {out.offset}, {sh.Ho}, {sh.Wo}, {sh.k}, {sh.s}, {sh.p}, {step.act == 'relu'}, "
            f"{residual_args(step)}, scratch{layout_args(step)})")


STRATEGY = Strategy("depthwise_oc", "blocks", "depthwise conv vectorised over channels (small images)", _eligible,
                    _cost, _call, _transform)
