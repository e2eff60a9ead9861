"""The CPU maxpool, LRN and elementwise kernels called directly on random shapes, against the float64 reference.

Like the conv strategies (tests/test_kernels.py) the kernels are generic over shapes, so one compiled module
runs every shape: its ``maxpool2d`` (over each channel's pixels) and ``maxpool_oc`` (a group of channels in the
vector lanes) are called with the input and output at offsets inside larger buffers and the output starting as
NaN (a pixel the kernel forgets shows). A max picks one of its float32 inputs, so the
kernel's answer must equal the reference exactly: the phase planes' -inf border (padding, the overhang of a
ceil-mode window) must never win, and a window made only of padding is -inf as in the reference. LRN sums
at most a few float32 squares and takes a power: relative error 1e-4 (the accuracy contract of every generated
module, README), far above its rounding, so a wrong window or channel fails. The elementwise kernels (add,
ReLU, ReLU6, batchnorm, global average) are checked the same way, in place too (output = input at the same
offset, as the memory planner lays them out). The fully connected kernel (``linear``) is checked against the
float64 product with TOL32, the contract of every module, on batches of 1 to 9 and depths past one pass of its
blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numerics import TOL32, rel_err

from cnnc.codegen import write
from cnnc.codegen.loader import import_path
from cnnc.graph import GraphBuilder
from cnnc.ops import make_op
from cnnc.runtime.reference import lrn, maxpool
from cnnc.shapes import window_out

XO, YO = 3, 5  # element offsets of the input and output inside their buffers


@pytest.fixture(scope="module")
def mod(tmp_path_factory: pytest.TempPathFactory):
    # compiled as it is (no passes): every kernel is emitted; max pooling of a 161x161 image runs maxpool2d, of
    # its 81x81 output maxpool_oc
    b = GraphBuilder("other_kernels", (2, 161, 161))
    x = b.layer("maxpool", b.layer("maxpool", b.input, kernel=3, stride=2, pad=1), kernel=3, stride=2, pad=1)
    x = b.layer("lrn", x, size=5, alpha=1e-4, beta=0.75, k=1.0)
    bn = b.layer("batchnorm", x)
    x = b.layer("add", [b.layer("relu", bn), b.layer("relu6", bn)])
    g = b.finish(b.layer("fc", b.layer("flatten", b.layer("gap", x)), out=3))
    m = import_path(write(g, "cpu", tmp_path_factory.mktemp("other")))
    assert all(hasattr(m, k) for k in ("maxpool2d", "maxpool_oc", "lrn", "batchnorm", "add", "relu", "relu6",
                                       "global_avgpool", "linear"))
    m.set_num_threads(2)
    m._MIN_SPLIT = 0  # these small shapes split across the threads too (this module is the tests' own)
    return m


def run_maxpool(mod, x: np.ndarray, k: int, s: int, p: int, ho: int, wo: int, kernel: str) -> np.ndarray:
    n, c, h, w = x.shape
    xb = np.full((n, XO + c * h * w + 4), np.nan, np.float32)
    xb[:, XO:XO + c * h * w] = x.reshape(n, -1)
    yb = np.full((n, YO + c * ho * wo + 2), np.nan, np.float32)
    getattr(mod, kernel)(xb, XO, c, h, w, yb, YO, ho, wo, k, s, p)
    assert np.isnan(yb[:, :YO]).all() and np.isnan(yb[:, YO + c * ho * wo:]).all()  # nothing outside written
    return yb[:, YO:YO + c * ho * wo].reshape(n, c, ho, wo)


@st.composite
def pool_cases(draw) -> tuple[int, int, int, int, int, int, int, str]:
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * p), 17))
    w = draw(st.integers(max(1, k - 2 * p), 17))
    return draw(st.integers(1, 3)), draw(st.integers(1, 5)), h, w, k, s, p, draw(st.sampled_from(["floor", "ceil"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=pool_cases(), seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]),
       kernel=st.sampled_from(["maxpool2d", "maxpool_oc"]))
def test_maxpool_equals_the_reference(mod, case, seed: int, threads: int, kernel: str) -> None:
    n, c, h, w, k, s, p, rounding = case
    ho, wo = window_out(h, k, s, p, rounding), window_out(w, k, s, p, rounding)
    # all negative: a padded zero would win where -inf must not
    x = -np.abs(np.random.default_rng(seed).standard_normal((n, c, h, w))).astype(np.float32) - 1.0
    ref = maxpool(make_op("maxpool", kernel=k, stride=s, pad=p, round=rounding), [x.astype(np.float64)], {})
    mod.set_num_threads(threads)
    try:
        y = run_maxpool(mod, x, k, s, p, ho, wo, kernel)
    finally:
        mod.set_num_threads(2)
    np.testing.assert_array_equal(y, ref.astype(np.float32))


@pytest.mark.parametrize(("c", "h", "k", "s", "p", "rounding"), [
    (64, 112, 3, 2, 0, "ceil"),  # GoogLeNet pool1: several bands of rows, split across threads
    (48, 30, 3, 1, 1, "floor"),  # an inception block's pool branch
    (8, 23, 2, 2, 0, "floor"),  # 2x2/2 (VGG), odd size
    (37, 40, 3, 2, 0, "ceil"),  # maxpool_oc: three groups of channels (the last masked), rows of 20 outputs
])
@pytest.mark.parametrize("kernel", ["maxpool2d", "maxpool_oc"])
def test_maxpool_network_shapes(mod, c: int, h: int, k: int, s: int, p: int, rounding: str, kernel: str) -> None:
    x = np.random.default_rng(c).standard_normal((2, c, h, h)).astype(np.float32)
    ho = window_out(h, k, s, p, rounding)
    ref = maxpool(make_op("maxpool", kernel=k, stride=s, pad=p, round=rounding), [x.astype(np.float64)], {})
    np.testing.assert_array_equal(run_maxpool(mod, x, k, s, p, ho, ho, kernel), ref.astype(np.float32))


def test_maxpool_kernel_by_image_size() -> None:
    from cnnc.codegen.cpu import maxpool_kernel

    # measured, one thread at batch 1, maxpool_oc against maxpool2d: ResNet's 64x112x112 3x3/2 0.69x, NiN's
    # 384x13x13 0.27x; VGG's 64x224x224 2x2/2 1.33x
    assert maxpool_kernel(112, 112) == "maxpool_oc" and maxpool_kernel(13, 13) == "maxpool_oc"
    assert maxpool_kernel(224, 224) == "maxpool2d"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), c=st.integers(1, 9), hw=st.integers(1, 40), size=st.integers(1, 7),
       beta=st.sampled_from([0.75, 0.6, 1.0]), seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
def test_lrn_matches_the_reference(mod, n: int, c: int, hw: int, size: int, beta: float, seed: int,
                                   threads: int) -> None:
    x = np.random.default_rng(seed).standard_normal((n, c, hw, 1)).astype(np.float32) * 3
    alpha, k = 0.5, 1.5  # large alpha: the window's squares move the result
    ref = lrn(make_op("lrn", size=size, alpha=alpha, beta=beta, k=k), [x.astype(np.float64)], {})
    xb = np.full((n, XO + c * hw + 4), np.nan, np.float32)
    xb[:, XO:XO + c * hw] = x.reshape(n, -1)
    yb = np.full((n, YO + c * hw + 2), np.nan, np.float32)
    mod.set_num_threads(threads)
    try:
        mod.lrn(xb, XO, c, hw, yb, YO, size, alpha, beta, k)
    finally:
        mod.set_num_threads(2)
    y = yb[:, YO:YO + c * hw].reshape(x.shape)
    assert np.isnan(yb[:, :YO]).all() and np.isnan(yb[:, YO + c * hw:]).all()
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), c=st.integers(1, 5), hw=st.integers(1, 70), inplace=st.booleans(),
       seed=st.integers(0, 2**16))
def test_elementwise_kernels(mod, n: int, c: int, hw: int, inplace: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    L = c * hw
    a = rng.standard_normal((n, L)).astype(np.float32) * 4
    b = rng.standard_normal((n, L)).astype(np.float32) * 4
    scale = rng.standard_normal(c).astype(np.float32)
    shift = rng.standard_normal(c).astype(np.float32)

    def buf(v: np.ndarray | None, off: int) -> np.ndarray:
        out = np.full((n, off + L + 3), np.nan, np.float32)
        if v is not None:
            out[:, off:off + L] = v
        return out

    def check(y: np.ndarray, off: int, ref: np.ndarray, tol: float = 0.0) -> None:
        assert np.isnan(y[:, :off]).all() and np.isnan(y[:, off + L:]).all()
        got = y[:, off:off + L]
        assert np.abs(got - ref).max() <= tol * max(np.abs(ref).max(), 1e-30), (got, ref)

    a64 = a.astype(np.float64)
    relu_ref = np.maximum(a64, 0)
    for name, ref in (("relu", relu_ref), ("relu6", np.minimum(relu_ref, 6))):
        xb = buf(a, XO)
        yb, yo = (xb, XO) if inplace else (buf(None, YO), YO)
        getattr(mod, name)(xb, XO, L, yb, yo)
        check(yb, yo, ref)
    for relu in (False, True):
        ab, bb = buf(a, XO), buf(b, 1)
        yb, yo = (ab, XO) if inplace else (buf(None, YO), YO)
        mod.add(ab, XO, bb, 1, L, yb, yo, relu)
        s = a64 + b.astype(np.float64)
        check(yb, yo, np.maximum(s, 0) if relu else s, 1e-7)  # one float32 rounding
    bn = (a64.reshape(n, c, hw) * scale[:, None] + shift[:, None]).reshape(n, L)
    for relu in (False, True):  # a fused pre-activation ReLU (fuse_relu)
        xb = buf(a, XO)
        yb, yo = (xb, XO) if inplace else (buf(None, YO), YO)
        mod.batchnorm(xb, XO, c, hw, scale, shift, yb, yo, relu)
        check(yb, yo, np.maximum(bn, 0) if relu else bn, 1e-6)  # a multiply-add in float32
    gb = np.full((n, YO + c + 2), np.nan, np.float32)
    mod.global_avgpool(buf(a, XO), XO, c, hw, gb, YO)
    mean = a64.reshape(n, c, hw).mean(axis=2)
    assert np.isnan(gb[:, :YO]).all() and np.isnan(gb[:, YO + c:]).all()
    assert np.abs(gb[:, YO:YO + c] - mean).max() <= 1e-6 * np.abs(a64).max()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), f=st.sampled_from([1, 5, 64, 1023, 1025, 2100]), o=st.integers(1, 100),
       relu=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
def test_linear_matches_the_reference(mod, n: int, f: int, o: int, relu: bool, bias: bool, seed: int,
                                      threads: int) -> None:
    """Any batch (the images are the blocks' pixels: 7 per block, so 8 and 9 leave a part-filled block), any
    number of outputs (a part-filled panel past the last whole one), depths over one pass (1024 inputs); the
    weight packed as Model packs it, nothing outside the output written."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)).astype(np.float32)
    w = rng.standard_normal((o, f)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else np.zeros(o, np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
    ref = np.maximum(ref, 0) if relu else ref
    xb = np.full((n, XO + f + 4), np.nan, np.float32)
    xb[:, XO:XO + f] = x
    yb = np.full((n, YO + o + 2), np.nan, np.float32)
    mod.set_num_threads(threads)
    try:
        mod.linear(xb, XO, f, mod._oc_panels(w, o), b, yb, YO, o, relu)
    finally:
        mod.set_num_threads(2)
    assert np.isnan(yb[:, :YO]).all() and np.isnan(yb[:, YO + o:]).all()
    if np.abs(ref).max() > 0:
        assert rel_err(yb[:, YO:YO + o], ref) <= TOL32
    else:
        assert (yb[:, YO:YO + o] == 0).all()
