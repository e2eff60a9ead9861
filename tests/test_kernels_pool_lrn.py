"""The CPU maxpool and LRN kernels called directly on random shapes, against the float64 reference ops.

Like the conv strategies (tests/test_kernels.py) the kernels are generic over shapes, so one compiled module
runs every shape: its ``maxpool2d`` is called with the input and output at offsets inside larger buffers and the
output starting as NaN (a pixel the kernel forgets shows). A max picks one of its float32 inputs, so the
kernel's answer must equal the reference exactly: the phase planes' -inf border (padding, the overhang of a
ceil-mode window) must never win, and a window made only of padding is -inf as in the reference. LRN sums
at most a few float32 squares and takes a power: relative error 1e-4 (the accuracy contract of every generated
module, README), far above its rounding, so a wrong window or channel fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc.codegen import write
from cnnc.codegen.loader import import_path
from cnnc.graph import GraphBuilder
from cnnc.ops import make_op
from cnnc.runtime.reference import lrn, maxpool
from cnnc.shapes import window_out

XO, YO = 3, 5  # element offsets of the input and output inside their buffers


@pytest.fixture(scope="module")
def mod(tmp_path_factory: pytest.TempPathFactory):
    b = GraphBuilder("pool_kernels", (2, 6, 6))
    g = b.finish(b.layer("lrn", b.layer("maxpool", b.input, kernel=3, stride=2, pad=1), size=5, alpha=1e-4,
                         beta=0.75, k=1.0))
    m = import_path(write(g, "cpu", tmp_path_factory.mktemp("pool")))
    m.set_num_threads(2)
    m._MIN_SPLIT = 0  # these small shapes split across the threads too (this module is the tests' own)
    return m


def run_maxpool(mod, x: np.ndarray, k: int, s: int, p: int, ho: int, wo: int) -> np.ndarray:
    n, c, h, w = x.shape
    xb = np.full((n, XO + c * h * w + 4), np.nan, np.float32)
    xb[:, XO:XO + c * h * w] = x.reshape(n, -1)
    yb = np.full((n, YO + c * ho * wo + 2), np.nan, np.float32)
    mod.maxpool2d(xb, XO, c, h, w, yb, YO, ho, wo, k, s, p)
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
@given(case=pool_cases(), seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
def test_maxpool_equals_the_reference(mod, case, seed: int, threads: int) -> None:
    n, c, h, w, k, s, p, rounding = case
    ho, wo = window_out(h, k, s, p, rounding), window_out(w, k, s, p, rounding)
    # all negative: a padded zero would win where -inf must not
    x = -np.abs(np.random.default_rng(seed).standard_normal((n, c, h, w))).astype(np.float32) - 1.0
    ref = maxpool(make_op("maxpool", kernel=k, stride=s, pad=p, round=rounding), [x.astype(np.float64)], {})
    mod.set_num_threads(threads)
    try:
        y = run_maxpool(mod, x, k, s, p, ho, wo)
    finally:
        mod.set_num_threads(2)
    np.testing.assert_array_equal(y, ref.astype(np.float32))


@pytest.mark.parametrize(("c", "h", "k", "s", "p", "rounding"), [
    (64, 112, 3, 2, 0, "ceil"),  # GoogLeNet pool1: several bands of rows, split across threads
    (48, 30, 3, 1, 1, "floor"),  # an inception block's pool branch
    (8, 23, 2, 2, 0, "floor"),  # 2x2/2 (VGG), odd size
])
def test_maxpool_network_shapes(mod, c: int, h: int, k: int, s: int, p: int, rounding: str) -> None:
    x = np.random.default_rng(c).standard_normal((2, c, h, h)).astype(np.float32)
    ho = window_out(h, k, s, p, rounding)
    ref = maxpool(make_op("maxpool", kernel=k, stride=s, pad=p, round=rounding), [x.astype(np.float64)], {})
    np.testing.assert_array_equal(run_maxpool(mod, x, k, s, p, ho, ho), ref.astype(np.float32))


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
