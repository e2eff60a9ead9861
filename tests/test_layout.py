"""Blocked tensors (NCHWc) inside a CPU module: the kernels that read and write them, and where the plan puts them.

The kernels vectorised over channels (``direct1x1_oc``, ``depthwise_oc``, ``conv2d_oc``) take an input and an
output either NCHW or blocked (``xb``, ``yb``; the residual lies as the output does); ``direct1x1_oc`` and
``conv2d_oc`` run panels of 48 channels or, ``wide``, of 64. Each is called here in
every combination on random shapes, the blocked operands permuted with NumPy, against the float64 reference with
TOL32 (the contract of every module). Then the layout decision (:mod:`cnnc.codegen.layout`): which tensors of a plan
are blocked, which 1x1 convs change kernel for it, and that nothing it cannot see through (a concat, the network's
output, a forced kernel, a channel count off the block) is ever blocked; and a module whose tensors are blocked gives
the reference's answer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numerics import TOL32, rel_err

from cnnc.codegen import cpu, write
from cnnc.codegen.kernels import ConvShape, harness
from cnnc.codegen.layout import LANES
from cnnc.codegen.loader import import_path
from cnnc.codegen.schedule import schedule
from cnnc.frontend import parse
from cnnc.passes.manager import run_pipeline
from cnnc.runtime import reference


@pytest.fixture(scope="module")
def mod(tmp_path_factory: pytest.TempPathFactory):
    m = harness.kernel_module(tmp_path_factory.mktemp("layout"))
    m._MIN_SPLIT = 0  # small shapes split across the threads too (this module is the tests' own)
    return m


def blocked(a: np.ndarray, lanes: int) -> np.ndarray:
    """(N, C, *pixels) NCHW -> (N, C*M) blocked: channel block, pixel, channel within the block."""
    n, c = a.shape[:2]
    return a.reshape(n, c // lanes, lanes, -1).transpose(0, 1, 3, 2).reshape(n, -1).copy()  # never a view of a


def unblocked(a: np.ndarray, c: int, lanes: int) -> np.ndarray:
    n = a.shape[0]
    return np.ascontiguousarray(a.reshape(n, c // lanes, -1, lanes).transpose(0, 1, 3, 2)).reshape(n, c, -1)


def reference_conv(x, w, b, sh: ConvShape, z) -> np.ndarray:
    op = harness.conv_op(sh, True, z is not None)
    xs = [x.astype(np.float64)] + ([z.astype(np.float64)] if z is not None else [])
    y = reference.conv(op, xs, {"weight": w.astype(np.float64), "bias": b.astype(np.float64)})
    return y.reshape(x.shape[0], sh.K, -1)


def run_layouts(mod, kernel: str, sh: ConvShape, n: int, xb: bool, yb: bool, res: bool, threads: int, seed: int,
                wide: bool = False):
    """``kernel``'s answer (N, K, M), its input blocked when ``xb``, output and residual when ``yb`` (and
    direct1x1_oc's panels ``wide``), and the reference's."""
    rng = np.random.default_rng(seed)
    lanes = mod._OC_LANES
    x = rng.standard_normal((n, sh.C, sh.H, sh.W)).astype(np.float32)
    w = rng.standard_normal((sh.K, sh.C // sh.G, sh.k, sh.k)).astype(np.float32)
    b = rng.standard_normal(sh.K).astype(np.float32)
    z = rng.standard_normal((n, sh.K, sh.Ho, sh.Wo)).astype(np.float32) if res else None
    m = sh.Ho * sh.Wo
    xin = blocked(x, lanes) if xb else x.reshape(n, -1)
    if res:  # in place over the residual, as the memory plan lays a fused residual out
        y = blocked(z, lanes) if yb else z.reshape(n, -1).copy()
    else:
        y = np.full((n, sh.K * m), np.nan, np.float32)
    mod.set_num_threads(threads)
    scratch = [(np.empty(1 << 20, np.float32),) for _ in range(threads)]
    if kernel == "direct1x1_oc":
        mod.direct1x1_oc(xin, 0, sh.C, m, mod._oc_panels(w.reshape(sh.K, sh.C), sh.K, wide), b, y, 0, sh.K, True,
                         y, 0, res, xb, yb, wide)
    elif kernel == "depthwise_oc":
        mod.depthwise_oc(xin, 0, sh.C, sh.H, sh.W, mod._dw_panels(w.reshape(sh.C, -1), sh.C, sh.k), b, y, 0, sh.Ho,
                         sh.Wo, sh.k, sh.s, sh.p, True, y, 0, res, scratch, xb, yb)
    else:
        mod.conv2d_oc(xin, 0, sh.C, sh.H, sh.W, mod._oc_panels(w.reshape(sh.K, -1), sh.K, wide), b, y, 0, sh.K,
                      sh.Ho, sh.Wo, sh.k, sh.s, sh.p, True, y, 0, res, scratch, xb, yb, wide)
    got = unblocked(y, sh.K, lanes) if yb else y.reshape(n, sh.K, m)
    return got, reference_conv(x, w, b, sh, z)


@st.composite
def cases(draw):
    kernel = draw(st.sampled_from(["direct1x1_oc", "depthwise_oc", "conv2d_oc"]))
    blocks = draw(st.integers(1, 5))
    c = LANES * blocks
    h = draw(st.integers(1, 17))
    w = draw(st.integers(1, 17))
    if kernel == "direct1x1_oc":  # output channels: whole panels of 48, and part-filled ones of 1 to 3 vectors
        k = LANES * draw(st.integers(1, 7))
        c = LANES * draw(st.sampled_from([1, 3, 65, 70]))  # 65 and 70 blocks: more than one 1024-deep pass
        return kernel, ConvShape(c, h, w, k, h, w, 1, 1, 0, 1)
    ks = draw(st.sampled_from([1, 3, 5]))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, ks // 2))
    ho, wo = (h + 2 * p - ks) // s + 1, (w + 2 * p - ks) // s + 1
    if ho < 1 or wo < 1:
        h = w = ks
        ho = wo = (ks + 2 * p - ks) // s + 1
    if kernel == "depthwise_oc":
        return kernel, ConvShape(c, h, w, c, ho, wo, ks, s, p, c)
    cin = draw(st.one_of(st.integers(1, 20), st.sampled_from([LANES, 2 * LANES, 3 * LANES])))  # whole blocks: blocked
    return kernel, ConvShape(cin, h, w, c, ho, wo, ks, s, p, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), n=st.integers(1, 3), xb=st.booleans(), yb=st.booleans(), res=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16), wide=st.booleans())
def test_kernels_read_and_write_either_layout(mod, case, n: int, xb: bool, yb: bool, res: bool, threads: int,
                                              seed: int, wide: bool) -> None:
    kernel, sh = case
    xb = xb and sh.C % LANES == 0  # a blocked input holds whole blocks of channels
    wide = wide and kernel != "depthwise_oc"  # (any output channels: a part-filled wide panel is masked)
    got, ref = run_layouts(mod, kernel, sh, n, xb, yb, res, threads, seed, wide)
    assert not np.isnan(got).any()
    assert rel_err(got, ref) < TOL32, (kernel, sh, xb, yb, res)


def test_a_1x1_conv_on_nchw_channels_off_the_block(mod) -> None:
    # NCHW on both sides needs no multiple of the lanes: 37 input rows (two groups and a rest), 50 outputs; at
    # batch 1 on two threads the one wide panel is split by pixels (two panels of 48: one each)
    for wide in (False, True):
        for n in (1, 2):
            got, ref = run_layouts(mod, "direct1x1_oc", ConvShape(37, 5, 6, 50, 5, 6, 1, 1, 0, 1), n, False, False,
                                   True, 2, 3, wide)
            assert rel_err(got, ref) < TOL32


# --- where the plan puts blocked tensors -------------------------------------------------------------------------

def compile_plan(text: str, kernels: dict[str, str] | None = None):
    g = parse(text, source="net.cnn", name="net")
    if kernels:
        g.graph["kernels"] = kernels
    g = run_pipeline(g, 1, log=None)
    plan = schedule(g)
    return g, plan, {plan.steps[i].node: lay for i, lay in cpu.conv_layouts(plan).items()}


# depthwise-separable blocks on 14x14 and 7x7 images (as MobileNet's last layers), one with a residual fused into its
# 1x1 conv, then a 1x1 conv to 40 channels (not whole blocks of 16), a global pool and an fc
SEPARABLE = """
network sep
input 3x28x28

block dwsep(cin, cout, s) = {
    conv(cin, 3, stride=s, pad=1, groups=cin) relu
    conv(cout, 1) relu
}
block resid(c) = add {
    conv(c, 3, pad=1, groups=c) relu conv(c, 1)
    identity
}

stem: conv(32, 3, stride=2, pad=1) relu
a: dwsep(32, 64, 1)
b: dwsep(64, 128, 2)
c: resid(128) relu
d: dwsep(128, 128, 1)
last: conv(40, 1) relu
pool: gap
flatten
fc: fc(10)
"""


def test_separable_blocks_are_blocked_between_the_kernels_that_read_them() -> None:
    _, _, lay = compile_plan(SEPARABLE)
    assert not lay["stem"].x and not lay["stem"].y
    assert lay["a/conv1"].choice.kernel == "depthwise_oc" and lay["a/conv1"].y and not lay["a/conv1"].x
    for name in ("a/conv2", "b/conv1", "b/conv2", "c/b1/conv1", "c/b1/conv2"):  # c/b1/conv2: the residual too
        assert lay[name].x and lay[name].y, name
        assert lay[name].choice.kernel in ("direct1x1_oc", "depthwise_oc"), name
    # last's 40 channels are not whole blocks, and last, a 1x1 conv the model gave direct1x1, switches kernel only
    # with both sides blocked: its input (d/conv2's output) and its output stay NCHW
    assert lay["last"].choice.kernel != "direct1x1_oc" and not lay["last"].x and not lay["last"].y
    assert not lay["d/conv2"].y


def test_a_forced_kernel_is_never_switched() -> None:
    _, _, free = compile_plan(SEPARABLE)
    switched = [n for n, lay in free.items() if lay.x and lay.choice.kernel == "direct1x1_oc"]
    assert switched
    forced = {n: "direct1x1" for n in switched}
    _, _, lay = compile_plan(SEPARABLE, forced)
    for n in switched:
        assert lay[n].choice.kernel == "direct1x1" and not lay[n].x and not lay[n].y


CONCAT = """
network cat
input 32x7x7
a: conv(32, 1) relu
m: concat {
    conv(32, 1) relu
    conv(16, 1) relu
}
c: conv(48, 1) relu
out: conv(32, 1)
"""


def test_tensors_a_kernel_cannot_read_blocked_stay_nchw() -> None:
    _, plan, lay = compile_plan(CONCAT)
    # the concat's inputs are computed into it in place (read as part of it); out is the network's output
    assert not any(v.y for n, v in lay.items() if n.startswith("m/") or n == "out")
    assert not lay["c"].x


# a residual chain (a bottleneck, as ResNet-50's) whose trunk the next stage's strided 1x1 convs read: blocked
# through when every kernel on it reads and writes blocked tensors (the strided convs gather their columns from the
# blocked trunk), the 3x3 conv between two 1x1 convs an NCHW one
TRUNK = """
network trunk
input 32x14x14
stem: conv(64, 1) relu
a: add {
    conv(32, 1) relu conv(32, 3, pad=1) relu conv(64, 1)
    identity
}
relu
next: add {
    conv(48, 1, stride=2)
    conv(48, 1, stride=2)
}
pool: gap
flatten
fc: fc(10)
"""
TRUNK_KERNELS = {"stem": "direct1x1_oc", "a/b1/conv1": "direct1x1_oc", "a/b1/conv2": "im2col",
                 "a/b1/conv3": "direct1x1_oc", "next/hfuse": "im2col_oc"}


def test_a_trunk_read_by_strided_convs_is_blocked_through() -> None:
    _, _, lay = compile_plan(TRUNK, TRUNK_KERNELS)
    assert lay["stem"].y and lay["a/b1/conv1"].x and lay["a/b1/conv3"].y  # the trunk, its residual in place
    assert lay["next/hfuse"].choice.kernel == "im2col_oc" and lay["next/hfuse"].x  # gathered from the trunk
    assert not lay["a/b1/conv1"].y and not lay["a/b1/conv2"].x and not lay["a/b1/conv3"].x  # im2col's NCHW
    assert not lay["next/hfuse"].y  # read by a pool


@pytest.mark.parametrize("text,kernels", [(SEPARABLE, None), (CONCAT, None), (TRUNK, TRUNK_KERNELS)])
def test_a_module_with_blocked_tensors_matches_the_reference(tmp_path, text: str,
                                                              kernels: dict[str, str] | None) -> None:
    g, _, lay = compile_plan(text, kernels)
    m = import_path(write(g, "cpu", tmp_path))
    params = m.init_params(1)
    x = np.random.default_rng(2).standard_normal((3,) + m.INPUT_SHAPE).astype(np.float32)
    ref = reference.run(g, params, x)
    for threads in (1, 2):
        m.set_num_threads(threads)
        assert rel_err(m.Model(params)(x), ref) < TOL32
    source = next(tmp_path.glob("*_cpu.py")).read_text()
    assert ("yb=True" in source) == any(v.y for v in lay.values())


def test_wide_panels_where_their_blocks_fill_better() -> None:
    from cnnc.codegen.kernels.oc_blocks import wide_panels

    def one(k: int, side: int) -> ConvShape:
        return ConvShape(64, side, side, k, side, side, 1, 1, 0, 1)

    assert wide_panels(one(64, 56)) and wide_panels(one(512, 14)) and wide_panels(one(1024, 6))
    assert not wide_panels(one(96, 54))  # not whole panels of 64
    assert not wide_panels(one(128, 7)) and not wide_panels(one(1024, 7))  # 49 pixels fill 49 of 9 blocks of 6


@pytest.mark.parametrize(("c", "xb"), [(37, False), (3 * LANES, True)])
def test_one_image_gathered_by_the_threads_together(mod, monkeypatch: pytest.MonkeyPatch, c: int, xb: bool) -> None:
    # at batch 1 im2col_oc's threads gather the image's columns together (by input channels: NCHW ones anywhere,
    # blocked ones in whole blocks) into one scratch before they split the panels of output channels, where the
    # columns are _SHARED_GATHER or more; alone, the thread gathers them as it multiplies
    sh = ConvShape(c, 30, 30, 6 * LANES, 15, 15, 5, 2, 2, 1)
    assert c * 25 * 15 * 15 >= mod._SHARED_GATHER
    run_layouts(mod, "conv2d_oc", sh, 1, xb, xb, False, 1, 5)  # compiled before _oc_gather is wrapped below
    shares: list[tuple[int, int]] = []
    gather = mod._oc_gather
    monkeypatch.setattr(mod, "_oc_gather", lambda *a: (shares.append(a[-3:-1]), gather(*a)))
    for threads in (2, 1):
        for res in (False, True):
            shares.clear()
            got, ref = run_layouts(mod, "conv2d_oc", sh, 1, xb, xb, res, threads, 5)
            assert not np.isnan(got).any()
            assert rel_err(got, ref) < TOL32, (threads, res)
            unit = mod._OC_LANES if xb else 1  # the kernel's blocks (8 channels under AVX2)
            half = -(-c // unit // 2) * unit
            assert sorted(shares) == ([(0, half), (half, c)] if threads == 2 else []), shares
