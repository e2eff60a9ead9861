"""Shape inference: the output shape of an op from the shapes of its inputs.

Shapes are per image, batch excluded: ``(C, H, W)`` for feature maps and ``(F,)`` for
flat vectors (after ``flatten`` or ``fc``). Errors are :class:`ShapeError` without a
location; the caller attaches the source span of the layer.
"""

from __future__ import annotations

from math import prod

from .errors import ShapeError
from .ops import Op

Shape = tuple[int, ...]


def fmt_shape(shape: Shape) -> str:
    """``64x28x28`` style (channels first, as the rest of cnnc)."""
    return "x".join(str(d) for d in shape)


def window_out(n: int, k: int, s: int, p: int, rounding: str, axis: str = "") -> int:
    """Output length of a sliding window: ``floor((n + 2p - k)/s) + 1``, or ceil/strict.

    Ceil rounding follows Caffe and PyTorch: the last window must start inside the
    left-padded input, otherwise it is dropped.
    """
    where = f" ({axis})" if axis else ""
    padded = n + 2 * p
    if k > padded:
        size = f"{n} + 2*{p} = {padded}" if p else f"{n}"
        raise ShapeError(f"kernel {k} is larger than its {'padded ' if p else ''}input{where}: {size} < {k}")
    num = padded - k
    if rounding == "strict" and num % s:
        expr = f"({n} - {k} + 2*{p})" if p else f"({n} - {k})"
        raise ShapeError(
            f"stride {s} does not fit the input{where}: {expr}/{s} + 1 = {num / s + 1:.2f}, "
            f"not an integer (use round=floor or round=ceil, or change the padding)"
        )
    if rounding == "ceil":
        out = -(-num // s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
        return out
    return num // s + 1


def _spatial(op: Op, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise ShapeError(f"{op.kind} needs a CxHxW input, got the flat vector {fmt_shape(shape)}")
    return shape


def infer_shape(op: Op, ins: list[Shape]) -> Shape:
    """The output shape of ``op`` applied to inputs of shapes ``ins`` (in order)."""
    k = op.kind
    if k in ("concat", "add"):
        return _merge_shape(op, ins)
    if k == "conv" and op.get("residual"):  # pass-made: conv(x) + r
        if len(ins) != 2:
            raise ShapeError(f"a conv with a fused residual takes its input and the residual, got {len(ins)} inputs")
        y = infer_shape(Op(k, {a: v for a, v in op.attrs.items() if a != "residual"}), ins[:1])
        if tuple(ins[1]) != tuple(y):
            raise ShapeError(f"the fused residual is {fmt_shape(ins[1])}, the conv's output {fmt_shape(y)}")
        return y
    if len(ins) != 1:
        raise ShapeError(f"{k} takes one input, got {len(ins)}")
    x = ins[0]
    if k == "conv":
        c, h, w = _spatial(op, x)
        g = op["groups"]
        if c % g or op["filters"] % g:
            raise ShapeError(
                f"groups={g} must divide both the input channels ({c}) and the filters ({op['filters']})"
            )
        kk, s, p, r = op["kernel"], op["stride"], op["pad"], op["round"]
        return (op["filters"], window_out(h, kk, s, p, r, "height"), window_out(w, kk, s, p, r, "width"))
    if k in ("maxpool", "avgpool"):
        c, h, w = _spatial(op, x)
        kk, s, p, r = op["kernel"], op["stride"], op["pad"], op["round"]
        if p * 2 > kk:
            raise ShapeError(f"pad={p} must be at most half the kernel ({kk}) for pooling")
        return (c, window_out(h, kk, s, p, r, "height"), window_out(w, kk, s, p, r, "width"))
    if k == "gap":
        c, _, _ = _spatial(op, x)
        return (c, 1, 1)
    if k == "lrn":
        _spatial(op, x)
        return x
    if k == "fc":
        return (op["out"],)
    if k == "flatten":
        return (prod(x),)
    if k in ("relu", "relu6", "dropout", "softmax", "batchnorm", "input"):
        return x
    if k == "slice":  # pass-made: channels [start, stop) of its input (a view)
        start, stop = op["start"], op["stop"]
        if not 0 <= start < stop <= x[0]:
            raise ShapeError(f"slice [{start}, {stop}) is outside the {x[0]} channels of its input")
        return (stop - start,) + tuple(x[1:])
    raise ShapeError(f"no shape rule for op kind {k!r}")


def _merge_shape(op: Op, ins: list[Shape]) -> Shape:
    if not ins:
        raise ShapeError(f"{op.kind} needs at least one branch")
    first = ins[0]
    if op.kind == "add":
        for i, s in enumerate(ins[1:], 2):
            if s != first:
                raise ShapeError(
                    f"add: branch {i} has shape {fmt_shape(s)} but branch 1 has {fmt_shape(first)}; "
                    "every branch of an add must have the same shape"
                )
        return first
    for i, s in enumerate(ins[1:], 2):
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ShapeError(
                f"concat: branch {i} is {fmt_shape(s)} but branch 1 is {fmt_shape(first)}; "
                "branches must agree on every dimension but channels"
            )
    return (sum(s[0] for s in ins),) + first[1:]
