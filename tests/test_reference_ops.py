"""Hand-computed checks of every op of the NumPy reference executor on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cnnc.errors import GraphError, InputError, ParamsError
from cnnc.graph import GraphBuilder, add_node
from cnnc.ops import Op
from cnnc.passes.params import effective_params
from cnnc.runtime.reference import run, run_all

RNG = np.random.default_rng(1234)


def one(kind: str, in_shape: tuple[int, ...], **attrs):
    """A graph input -> one op."""
    b = GraphBuilder("one", in_shape)
    n = b.layer(kind, b.input, name="op", **attrs)
    return b.finish(n)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def naive_conv(x, w, b, stride, pad, groups):
    """Seven loops, no tricks: the textbook definition."""
    n, c, h, wd = x.shape
    f, cg, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + wd] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, f, ho, wo))
    fg = f // groups
    for i in range(n):
        for o in range(f):
            g0 = (o // fg) * cg
            for y in range(ho):
                for z in range(wo):
                    acc = b[o] if b is not None else 0.0
                    for ci in range(cg):
                        for dy in range(k):
                            for dz in range(k):
                                acc += w[o, ci, dy, dz] * xp[i, g0 + ci, y * stride + dy, z * stride + dz]
                    out[i, o, y, z] = acc
    return out


# --- conv -----------------------------------------------------------------------------------

def test_1x1_conv_is_a_per_pixel_matrix_product():
    g = one("conv", (5, 4, 3), filters=7, kernel=1)
    w, b, x = rand(7, 5, 1, 1), rand(7), rand(2, 5, 4, 3)
    y = run(g, {"op.weight": w, "op.bias": b}, x)
    for i in range(2):
        for r in range(4):
            for c in range(3):
                np.testing.assert_allclose(y[i, :, r, c], w[:, :, 0, 0] @ x[i, :, r, c] + b, rtol=1e-12)


def test_architectures_6x6x32_input_with_one_1x1x32_filter():
    # ARCHITECTURES.md, "Shape arithmetic": 6x6x32 input, 1x1x32 filter -> one 6x6 map per filter
    g = one("conv", (32, 6, 6), filters=1, kernel=1)
    assert g.nodes["op"]["shape"] == (1, 6, 6)
    w, b, x = rand(1, 32, 1, 1), rand(1), rand(1, 32, 6, 6)
    y = run(g, {"op.weight": w, "op.bias": b}, x)
    assert y.shape == (1, 1, 6, 6)
    for r in range(6):
        for c in range(6):
            want = sum(w[0, ch, 0, 0] * x[0, ch, r, c] for ch in range(32)) + b[0]
            assert y[0, 0, r, c] == pytest.approx(want, rel=1e-12)


def test_conv_window_sums_by_hand():
    # 3x3 input 1..9, a 2x2 kernel of ones, bias 0.5: each output is a 2x2 window sum + 0.5
    g = one("conv", (1, 3, 3), filters=1, kernel=2)
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = run(g, {"op.weight": np.ones((1, 1, 2, 2)), "op.bias": np.array([0.5])}, x)
    np.testing.assert_array_equal(y[0, 0], [[12.5, 16.5], [24.5, 28.5]])


def test_conv_stride_pad_without_bias_by_hand():
    # 1x3x3 ones, 3x3 kernel of ones, pad 1, stride 2 -> windows at the corners see 4 real cells
    g = one("conv", (1, 3, 3), filters=1, kernel=3, stride=2, pad=1, bias=False)
    y = run(g, {"op.weight": np.ones((1, 1, 3, 3))}, np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(y[0, 0], [[4.0, 4.0], [4.0, 4.0]])


@pytest.mark.parametrize("stride,pad,groups", [(1, 0, 1), (2, 1, 1), (1, 1, 2), (2, 2, 3), (3, 0, 6)])
def test_conv_matches_textbook_loops(stride, pad, groups):
    c, f, k = 6, 6, 3
    g = one("conv", (c, 7, 8), filters=f, kernel=k, stride=stride, pad=pad, groups=groups)
    w, b, x = rand(f, c // groups, k, k), rand(f), rand(2, c, 7, 8)
    y = run(g, {"op.weight": w, "op.bias": b}, x)
    assert rel(y, naive_conv(x, w, b, stride, pad, groups)) < 1e-12


def test_grouped_conv_is_two_convs_on_channel_halves():
    g = one("conv", (4, 5, 5), filters=6, kernel=3, pad=1, groups=2)
    w, b, x = rand(6, 2, 3, 3), rand(6), rand(2, 4, 5, 5)
    y = run(g, {"op.weight": w, "op.bias": b}, x)
    half = one("conv", (2, 5, 5), filters=3, kernel=3, pad=1)
    y0 = run(half, {"op.weight": w[:3], "op.bias": b[:3]}, x[:, :2])
    y1 = run(half, {"op.weight": w[3:], "op.bias": b[3:]}, x[:, 2:])
    np.testing.assert_allclose(y, np.concatenate([y0, y1], axis=1), rtol=1e-12)
    # group 0's outputs do not see group 1's channels
    x2 = x.copy()
    x2[:, 2:] = rand(2, 2, 5, 5)
    np.testing.assert_array_equal(run(g, {"op.weight": w, "op.bias": b}, x2)[:, :3], y[:, :3])


def test_conv_ceil_rounding_pads_right_with_zeros():
    # 1x4x4, kernel 2, stride 3: floor gives 1, ceil gives 2 (the window at 3 sees one real column)
    g = one("conv", (1, 4, 4), filters=1, kernel=2, stride=3, round="ceil", bias=False)
    assert g.nodes["op"]["shape"] == (1, 2, 2)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y = run(g, {"op.weight": np.ones((1, 1, 2, 2))}, x)
    np.testing.assert_array_equal(y[0, 0], [[0 + 1 + 4 + 5, 3 + 7], [12 + 13, 15]])


# --- pooling --------------------------------------------------------------------------------

def test_maxpool_ceil_last_window_hangs_over_the_edge():
    # 5x5 = 0..24, 2x2/2 ceil -> 3x3; the last row/column windows see one real row/column
    g = one("maxpool", (1, 5, 5), kernel=2, stride=2, round="ceil")
    assert g.nodes["op"]["shape"] == (1, 3, 3)
    y = run(g, {}, np.arange(25.0).reshape(1, 1, 5, 5))
    np.testing.assert_array_equal(y[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


def test_maxpool_floor_drops_the_partial_window():
    g = one("maxpool", (1, 5, 5), kernel=2, stride=2)
    y = run(g, {}, np.arange(25.0).reshape(1, 1, 5, 5))
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [16, 18]])


def test_maxpool_padded_cells_never_win():
    # all inputs negative: a zero pad would win every border window if it counted
    g = one("maxpool", (1, 3, 3), kernel=3, stride=2, pad=1)
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # -1 .. -9
    y = run(g, {}, x)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2], [-4, -5]])


def test_avgpool_with_padding_counts_pad_cells_or_not():
    x = np.ones((1, 1, 3, 3))
    g = one("avgpool", (1, 3, 3), kernel=2, stride=2, pad=1)
    # windows start at -1 and 1: the corner window holds 1 real cell of 4, the edges 2 of 4
    np.testing.assert_array_equal(run(g, {}, x)[0, 0], [[0.25, 0.5], [0.5, 1.0]])
    g = one("avgpool", (1, 3, 3), kernel=2, stride=2, pad=1, count_pad=False)
    np.testing.assert_array_equal(run(g, {}, x)[0, 0], [[1.0, 1.0], [1.0, 1.0]])


def test_avgpool_ceil_window_divides_by_the_window_clipped_to_the_padded_input():
    # 4x4 = 0..15, 3x3/2 pad 1 ceil -> 3x3; window starts -1, 1, 3; the last one spans
    # [3, 6) but the padded input ends at 5, so it counts 2 rows (PyTorch/Caffe rule)
    g = one("avgpool", (1, 4, 4), kernel=3, stride=2, pad=1, round="ceil")
    assert g.nodes["op"]["shape"] == (1, 3, 3)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y = run(g, {}, x)[0, 0]
    assert y[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 9)
    assert y[0, 2] == pytest.approx((3 + 7) / 6)  # rows [-1,2) x cols [3,5): 3 x 2 counted
    assert y[2, 2] == pytest.approx(15 / 4)  # rows [3,5) x cols [3,5)
    assert y[1, 1] == pytest.approx(sum(x[0, 0, 1:4, 1:4].ravel()) / 9)
    g = one("avgpool", (1, 4, 4), kernel=3, stride=2, pad=1, round="ceil", count_pad=False)
    y = run(g, {}, x)[0, 0]
    assert y[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert y[0, 2] == pytest.approx((3 + 7) / 2)
    assert y[2, 2] == pytest.approx(15.0)


def test_gap_is_the_spatial_mean():
    g = one("gap", (3, 4, 5))
    x = rand(2, 3, 4, 5)
    y = run(g, {}, x)
    assert y.shape == (2, 3, 1, 1)
    for i in range(2):
        for c in range(3):
            assert y[i, c, 0, 0] == pytest.approx(sum(x[i, c].ravel()) / 20, rel=1e-12)


# --- LRN ------------------------------------------------------------------------------------

def test_lrn_odd_window_by_hand():
    # channels 1,2,3,4 at one pixel; size 3 (1 before, 1 after), alpha/size = 1, beta 1, k 1
    g = one("lrn", (4, 1, 1), size=3, alpha=3.0, beta=1.0, k=1.0)
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    y = run(g, {}, x).ravel()
    np.testing.assert_allclose(y, [1 / (1 + 5), 2 / (1 + 14), 3 / (1 + 29), 4 / (1 + 25)], rtol=1e-14)


def test_lrn_even_window_pads_more_before():
    # size 4: 2 channels before, 1 after (PyTorch local_response_norm)
    g = one("lrn", (4, 1, 1), size=4, alpha=4.0, beta=1.0, k=1.0)
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    y = run(g, {}, x).ravel()
    np.testing.assert_allclose(y, [1 / (1 + 5), 2 / (1 + 14), 3 / (1 + 30), 4 / (1 + 29)], rtol=1e-14)


def test_lrn_beta_and_k():
    g = one("lrn", (1, 1, 2), size=5, alpha=1e-4, beta=0.75, k=2.0)
    x = np.array([3.0, -7.0]).reshape(1, 1, 1, 2)
    y = run(g, {}, x).ravel()
    np.testing.assert_allclose(y, x.ravel() / (2.0 + 1e-4 / 5 * x.ravel() ** 2) ** 0.75, rtol=1e-14)


# --- element-wise, fc, merges ---------------------------------------------------------------

def test_relu_dropout_flatten():
    x = rand(2, 3, 2, 2)
    np.testing.assert_array_equal(run(one("relu", (3, 2, 2)), {}, x), np.where(x > 0, x, 0))
    np.testing.assert_array_equal(run(one("dropout", (3, 2, 2), p=0.5), {}, x), x)
    y = run(one("flatten", (3, 2, 2)), {}, x)
    assert y.shape == (2, 12)
    assert y[1, 7] == x[1, 1, 1, 1]  # C,H,W order: 7 = 1*4 + 1*2 + 1


def test_fc_flattens_in_chw_order():
    g = one("fc", (2, 3, 4), out=2)
    x = rand(2, 2, 3, 4)
    w = np.zeros((2, 24))
    w[0, 1 * 12 + 2 * 4 + 3] = 2.0  # picks x[:, 1, 2, 3]
    w[1, 0 * 12 + 1 * 4 + 0] = -1.0  # picks x[:, 0, 1, 0]
    b = np.array([0.5, -0.25])
    y = run(g, {"op.weight": w, "op.bias": b}, x)
    np.testing.assert_allclose(y[:, 0], 2 * x[:, 1, 2, 3] + 0.5, rtol=1e-14)
    np.testing.assert_allclose(y[:, 1], -x[:, 0, 1, 0] - 0.25, rtol=1e-14)


def test_fc_on_flat_input_without_bias():
    g = one("fc", (5,), out=3, bias=False)
    w, x = rand(3, 5), rand(4, 5)
    np.testing.assert_allclose(run(g, {"op.weight": w}, x), x @ w.T, rtol=1e-12)


def test_softmax_over_channels_by_hand():
    g = one("softmax", (3,))
    x = np.log(np.array([[1.0, 2.0, 5.0], [4.0, 4.0, 2.0]])) + 1000.0  # large: must not overflow
    np.testing.assert_allclose(run(g, {}, x), [[0.125, 0.25, 0.625], [0.4, 0.4, 0.2]], rtol=1e-12)
    g = one("softmax", (2, 1, 2))
    x = np.log(np.array([1.0, 3.0, 3.0, 1.0])).reshape(1, 2, 1, 2)
    np.testing.assert_allclose(run(g, {}, x)[0, :, 0], [[0.25, 0.75], [0.75, 0.25]], rtol=1e-12)


def test_batchnorm_inference_by_hand():
    g = one("batchnorm", (2, 1, 2), eps=0.0)
    p = {"op.weight": np.array([2.0, 3.0]), "op.bias": np.array([1.0, -1.0]),
         "op.running_mean": np.array([1.0, 2.0]), "op.running_var": np.array([4.0, 9.0])}
    x = np.array([5.0, -3.0, 2.0, 8.0]).reshape(1, 2, 1, 2)
    y = run(g, p, x)
    np.testing.assert_allclose(y.ravel(), [(5 - 1) / 2 * 2 + 1, (-3 - 1) / 2 * 2 + 1,
                                           (2 - 2) / 3 * 3 - 1, (8 - 2) / 3 * 3 - 1], rtol=1e-14)


def test_concat_keeps_input_order_and_add_sums():
    b = GraphBuilder("m", (2, 2, 2))
    r = b.layer("relu", b.input)
    d = b.layer("dropout", b.input)
    c = b.layer("concat", [d, r, d])
    a = b.layer("add", [r, d, r])
    g = b.finish(c)
    x = rand(2, 2, 2, 2)
    out = run_all(g, {}, x)
    np.testing.assert_array_equal(out[c], np.concatenate([x, np.maximum(x, 0), x], axis=1))
    np.testing.assert_allclose(out[a], 2 * np.maximum(x, 0) + x, rtol=1e-15)


# --- pass annotations -----------------------------------------------------------------------

def test_fused_relu_act_on_conv_and_fc():
    for kind, shape, attrs in (("conv", (3, 4, 4), {"filters": 5, "kernel": 3}), ("fc", (7,), {"out": 4})):
        g = one(kind, shape, **attrs)
        w = rand(5, 3, 3, 3) if kind == "conv" else rand(4, 7)
        p = {"op.weight": w, "op.bias": rand(w.shape[0])}
        x = rand(2, *shape)
        plain = run(g, p, x)
        assert (plain < 0).any()
        g.nodes["op"]["op"] = g.nodes["op"]["op"].replace(act="relu")
        np.testing.assert_array_equal(run(g, p, x), np.maximum(plain, 0))


def _siblings():
    """input -> a: conv 1x1 (bias) ; b: conv 1x1 (no bias) -> bn ; concat(a, bn), the unfused network."""
    bld = GraphBuilder("sib", (4, 3, 3))
    a = bld.layer("conv", bld.input, name="a", filters=3, kernel=1)
    c = bld.layer("conv", bld.input, name="b", filters=2, kernel=1, bias=False)
    n = bld.layer("batchnorm", c, name="bn", eps=1e-3)
    return bld.finish(bld.layer("concat", [a, n], name="cat"))


def _fused():
    """The same network after horizontal fusion and BN folding: one conv and two slices."""
    g = _siblings()
    from cnnc.graph import new_graph

    f = new_graph("sib", (4, 3, 3))
    parts = ({"node": "a", "out": 3, "bias": True, "bn": None, "eps": 1e-5},
             {"node": "b", "out": 2, "bias": False, "bn": "bn", "eps": 1e-3})
    add_node(f, "ab", Op("conv", {**g.nodes["a"]["op"].attrs, "filters": 5, "parts": parts}), ["input"])
    add_node(f, "sa", Op("slice", {"start": 0, "stop": 3}), ["ab"])
    add_node(f, "sb", Op("slice", {"start": 3, "stop": 5}), ["ab"])
    add_node(f, "cat", Op("concat", {"inplace": True}), ["sa", "sb"])
    f.graph["output"] = "cat"
    f.graph["params"] = [("a.weight", (3, 4, 1, 1)), ("a.bias", (3,)), ("b.weight", (2, 4, 1, 1)),
                         ("bn.weight", (2,)), ("bn.bias", (2,)), ("bn.running_mean", (2,)),
                         ("bn.running_var", (2,))]
    return g, f


def _sib_params():
    return {"a.weight": rand(3, 4, 1, 1), "a.bias": rand(3), "b.weight": rand(2, 4, 1, 1),
            "bn.weight": rand(2), "bn.bias": rand(2), "bn.running_mean": rand(2),
            "bn.running_var": RNG.uniform(0.5, 2.0, 2)}


def test_parts_slices_and_inplace_concat_give_the_unfused_result():
    g, f = _fused()
    p, x = _sib_params(), rand(2, 4, 3, 3)
    assert rel(run(f, p, x), run(g, p, x)) < 1e-12
    every = run_all(f, p, x)
    assert set(every) == {"input", "ab", "sa", "sb", "cat"}


def test_effective_params_by_hand():
    _, f = _fused()
    p = _sib_params()
    w, b = effective_params(f, p)["ab"]
    scale = p["bn.weight"] / np.sqrt(p["bn.running_var"] + 1e-3)
    np.testing.assert_allclose(w[:3], p["a.weight"], rtol=0)
    np.testing.assert_allclose(w[3:], p["b.weight"] * scale[:, None, None, None], rtol=1e-14)
    np.testing.assert_allclose(b[:3], p["a.bias"], rtol=0)
    np.testing.assert_allclose(b[3:], (0 - p["bn.running_mean"]) * scale + p["bn.bias"], rtol=1e-14)
    g = one("fc", (3,), out=2, bias=False)
    q = {"op.weight": rand(2, 3)}
    w, b = effective_params(g, q)["op"]
    assert w is q["op.weight"] and b is None


def test_batchnorm_folded_into_fc_gives_the_unfolded_result():
    b = GraphBuilder("fcbn", (6,))
    b.layer("fc", b.input, name="fc", out=4)
    g = b.finish(b.layer("batchnorm", "fc", name="bn", eps=1e-2))
    p = {"fc.weight": rand(4, 6), "fc.bias": rand(4), "bn.weight": rand(4), "bn.bias": rand(4),
         "bn.running_mean": rand(4), "bn.running_var": RNG.uniform(0.5, 2.0, 4)}
    from cnnc.graph import new_graph

    f = new_graph("fcbn", (6,))
    parts = ({"node": "fc", "out": 4, "bias": True, "bn": "bn", "eps": 1e-2},)
    add_node(f, "fc", Op("fc", {"out": 4, "bias": True, "parts": parts, "act": "relu"}), ["input"])
    f.graph["output"] = "fc"
    x = rand(3, 6)
    assert rel(run(f, p, x), np.maximum(run(g, p, x), 0)) < 1e-12


def test_effective_params_reports_a_part_of_the_wrong_width():
    _, f = _fused()
    d = f.nodes["ab"]["op"]
    bad = ({**d["parts"][0], "out": 2}, d["parts"][1])
    f.nodes["ab"]["op"] = d.replace(parts=bad)
    with pytest.raises(GraphError, match="declares 2 outputs but its weight has 3"):
        effective_params(f, _sib_params())


def test_missing_parameter_is_a_params_error():
    g = one("conv", (1, 3, 3), filters=1, kernel=2)
    with pytest.raises(ParamsError, match="op.bias"):
        run(g, {"op.weight": np.ones((1, 1, 2, 2))}, np.ones((1, 1, 3, 3)))


# --- run / run_all plumbing -----------------------------------------------------------------

def test_dtype_and_output_shape():
    g = one("conv", (2, 5, 5), filters=3, kernel=3)
    p = {"op.weight": rand(3, 2, 3, 3).astype(np.float32), "op.bias": rand(3).astype(np.float32)}
    x = rand(4, 2, 5, 5)
    y32, y64 = run(g, p, x, np.float32), run(g, p, x)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    assert y64.shape == (4, 3, 3, 3)
    assert 0 < rel(y32, y64) < 1e-5


def test_run_all_returns_every_node_and_run_the_output():
    b = GraphBuilder("t", (2, 6, 6))
    c = b.layer("conv", b.input, filters=3, kernel=3)
    r = b.layer("relu", c)
    m = b.layer("maxpool", r, kernel=2)
    g = b.finish(r)  # the output need not be the last node
    p = {"conv1.weight": rand(3, 2, 3, 3), "conv1.bias": rand(3)}
    x = rand(2, 2, 6, 6)
    every = run_all(g, p, x)
    assert list(every) == ["input", c, r, m]
    np.testing.assert_array_equal(every[r], np.maximum(every[c], 0))
    np.testing.assert_array_equal(run(g, p, x), every[r])


def test_bad_input_shape_and_dtype():
    g = one("relu", (2, 3, 3))
    with pytest.raises(InputError, match=r"input has shape \(2, 3, 3\).*\(N, 2, 3, 3\)"):
        run(g, {}, rand(2, 3, 3))
    with pytest.raises(InputError, match=r"\(1, 3, 3, 3\)"):
        run(g, {}, rand(1, 3, 3, 3))
    with pytest.raises(InputError, match="dtype int64"):
        run(g, {}, np.ones((1, 2, 3, 3), dtype=np.int64))


def test_unknown_op_kind_is_a_graph_error():
    g = one("relu", (2, 3, 3))
    g.nodes["op"]["op"] = Op("mystery", {})
    with pytest.raises(GraphError, match="no rule for op kind 'mystery'"):
        run(g, {}, rand(1, 2, 3, 3))
