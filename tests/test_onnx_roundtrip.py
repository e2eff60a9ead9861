"""ONNX in and out: `cnnc export` checked by ONNX Runtime (a second oracle of the reference executor),
`cnnc import` of the export (same parameter list, MACs and outputs), blocks for repeated merges,
the refusals, and the command line.

Bounds: the float32 network in ONNX Runtime against the float64 reference: relative-norm 1e-4 (float32
rounding, ~1e-7 per operation, grows with depth and reduction length; GoogLeNet's deepest path is under
60 layers). The round trip carries the very same float32 weights, so the imported network's float64
reference output equals the original's to 1e-12 (only the summation order could differ; it does not); where
the imported network runs in float32 (the archs/ loop, for time) the bound is 1e-5; the biggest networks are
compared layer by layer and weight by weight instead of run a second time.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnc import params as P  # noqa: E402
from cnnc.cli import main  # noqa: E402
from cnnc.frontend import load, parse  # noqa: E402
from cnnc.graph import GraphBuilder, param_specs, totals  # noqa: E402
from cnnc.interop.onnx.export import to_onnx  # noqa: E402
from cnnc.interop.onnx.importer import OnnxImportError, identifier, read_model, to_graph  # noqa: E402
from cnnc.interop.onnx.writer import to_cnn  # noqa: E402
from cnnc.runtime.reference import run  # noqa: E402

ARCHS = Path(__file__).resolve().parent.parent / "archs"
BIG = {"vgg16", "vgg19", "alexnet", "zfnet"}  # 5-10 s each at batch 1 (the float64 reference): slow


def relnorm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def ort_run(model, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0]


def roundtrip(g, p):
    model = to_onnx(g, p)
    g2, p2, _ = to_graph(onnx.load_from_string(model.SerializeToString()), g.graph["name"])
    text, g3, p3 = to_cnn(g2, p2)
    return model, text, g3, p3


def _layers(g) -> list[str]:
    return [f"{d['op'].kind} {sorted(d['op'].attrs.items())} {d['shape']}" for _, d in g.nodes(data=True)]


def arch_params():
    names = sorted(p.stem for p in ARCHS.glob("*.cnn"))
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in names]


@pytest.mark.parametrize("name", arch_params())
def test_export_runs_in_onnxruntime_and_imports_back(name):
    g = load(ARCHS / f"{name}.cnn")
    p = P.random(g, seed=1)
    x = np.random.default_rng(2).standard_normal((1,) + g.nodes["input"]["shape"])
    ref = run(g, p, x)
    model, text, g3, p3 = roundtrip(g, p)
    # ONNX Runtime as a second oracle of the reference executor
    assert relnorm(ort_run(model, x), ref) < 1e-4
    # the imported network: same parameters (names up to '/' -> '_' outside blocks), MACs, outputs
    s1, s3 = param_specs(g), param_specs(g3)
    assert [s for _, s in s1] == [s for _, s in s3]
    assert [n.replace("/", "_") for n, _ in s1] == [n.replace("/", "_") for n, _ in s3]
    assert totals(g).macs == totals(g3).macs and totals(g).params == totals(g3).params
    # the same layers with the same weights in the same places...
    assert sorted(_layers(g)) == sorted(_layers(g3))
    assert all(p[a].tobytes() == p3[b].tobytes() for (a, _), (b, _) in zip(s1, s3, strict=True))
    if name not in BIG:  # ...and so the same outputs (run where it is cheap)
        assert relnorm(run(g3, p3, x, np.float32), ref) < 1e-5
    assert parse(text).number_of_nodes() == g3.number_of_nodes()  # the text alone rebuilds it


def test_export_metadata_and_dynamic_batch():
    g = load(ARCHS / "lenet5.cnn")
    p = P.random(g, seed=3)
    m = to_onnx(g, p)
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 17
    assert [n.name for n in m.graph.node][:2] == ["c1", "relu1"]
    assert m.graph.node[0].doc_string.endswith("lenet5.cnn:7:5")  # `c1: conv(6, 5) relu` on line 7
    assert {i.name for i in m.graph.initializer} >= {"c1.weight", "c1.bias", "f7.weight"}
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "N"
    x = np.random.default_rng(4).standard_normal((3, 1, 32, 32))
    assert relnorm(ort_run(m, x), run(g, p, x)) < 1e-5
    assert m.SerializeToString() == to_onnx(g, p).SerializeToString()  # deterministic


@pytest.mark.parametrize("name", ["inception_reduced", "resnet18"])  # resnet18: convs with fused residual adds
def test_optimised_graph_exports_its_effective_weights(name: str):
    from cnnc.passes import manager

    g = load(ARCHS / f"{name}.cnn")
    p = P.random(g, seed=5)
    opt = manager.run_pipeline(g, level=1)
    x = np.random.default_rng(6).standard_normal((1,) + g.nodes["input"]["shape"])
    assert relnorm(ort_run(to_onnx(opt, p), x), run(g, p, x)) < 1e-4


def test_googlenet_imports_as_one_inception_block_called_nine_times():
    g = load(ARCHS / "googlenet.cnn")
    p = P.init(g, seed=0)
    _, text, g3, _ = roundtrip(g, p)
    assert len(re.findall(r"^block ", text, flags=re.M)) == 1
    name = re.search(r"^block (\w+)\((\w+(?:, \w+)*)\)", text, flags=re.M)
    assert name and len(name.group(2).split(", ")) == 6  # c1, c3r, c3, c5r, c5, pp
    calls = re.findall(rf"^(\w+): {name.group(1)}\(", text, flags=re.M)
    assert calls == ["i3a", "i3b", "i4a", "i4b", "i4c", "i4d", "i4e", "i5a", "i5b"]
    assert len(text.splitlines()) < 30
    assert [n for n, _ in param_specs(g)] == [n for n, _ in param_specs(g3)]  # i3a/b1/conv1.weight, ...
    assert roundtrip(g, p)[1] == text  # deterministic


RESNET = """
network resnet_test
input 3x16x16
stem: conv(8, 3, pad=1, bias=false) bn relu
block basic(w) = add {
    conv(w, 3, pad=1, bias=false) bn relu conv(w, 3, pad=1, bias=false) bn
    identity
}
block down(w) = add {
    conv(w, 3, stride=2, pad=1, bias=false) bn relu conv(w, 3, pad=1, bias=false) bn
    conv(w, 1, stride=2, bias=false) bn
}
r1: basic(8) relu
r2: basic(8) relu
d1: down(16) relu
r3: basic(16) relu
d2: down(32) relu
r4: basic(32) relu
gap flatten fc(10)
"""


def test_residual_blocks_become_two_blocks():
    g = parse(RESNET)
    p = P.random(g, seed=7)
    _, text, g3, p3 = roundtrip(g, p)
    blocks = re.findall(r"^block (\w+)\(([\w, ]*)\) = add", text, flags=re.M)
    assert len(blocks) == 2 and all(params == "w1" for _, params in blocks)  # both widths of a block tie
    assert re.findall(r"^(\w+): \w+_block\w*\((\d+)\)", text, flags=re.M) == [
        ("r1", "8"), ("r2", "8"), ("d1", "16"), ("r3", "16"), ("d2", "32"), ("r4", "32")]
    x = np.random.default_rng(8).standard_normal((2, 3, 16, 16))
    assert relnorm(run(g3, p3, x), run(g, p, x)) < 1e-12


def test_a_dag_that_is_not_series_parallel_is_written_with_refs():
    b = GraphBuilder("dense", (3, 8, 8))
    a = b.layer("conv", b.input, name="a", filters=4, kernel=3, pad=1)
    c1 = b.layer("concat", [b.input, a], name="c1")
    c = b.layer("conv", c1, name="c", filters=4, kernel=1)
    c2 = b.layer("concat", [b.input, a, c], name="c2")
    g = b.finish(b.layer("conv", c2, name="out", filters=2, kernel=1))
    p = P.random(g, seed=9)
    _, text, g3, p3 = roundtrip(g, p)
    assert "@a" in text
    x = np.random.default_rng(10).standard_normal((2, 3, 8, 8))
    assert relnorm(run(g3, p3, x), run(g, p, x)) < 1e-12


# --- hand-made ONNX models: what cnnc's exporter never writes ------------------------------------

def _model(nodes, inits, in_shape=("N", 3, 8, 8), out="y", opset=17, out_shape=None):
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_zero_pad_folds_into_conv_and_matmul_add_is_fc():
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["xp"], name="pad0"),
        helper.make_node("Conv", ["xp", "W"], ["c"], name="conv/0", kernel_shape=[3, 3]),
        helper.make_node("Clip", ["c", "zero"], ["r"], name="clip"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "M"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "b"], ["y"], name="bias"),
    ]
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "W": _w(4, 3, 3, 3), "zero": np.float32(0),
             "M": _w(4 * 8 * 8, 5, seed=1), "b": _w(5, seed=2)}
    m = _model(nodes, inits)
    g, p, _ = to_graph(m)
    text, g3, p3 = to_cnn(g, p)
    assert "conv_0: conv(4, 3, pad=1, bias=false)" in text and "fc(5)" in text and "relu" in text
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8))
    assert relnorm(run(g3, p3, x), ort_run(m, x)) < 1e-5


def test_every_unsupported_op_is_named_with_count_and_first_node(tmp_path, capsys):
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s1"], name="sig_a"),
        helper.make_node("Sigmoid", ["s1"], ["s2"], name="sig_b"),
        helper.make_node("Tanh", ["s2"], ["y"], name="tanh_a"),
    ]
    with pytest.raises(OnnxImportError) as e:
        to_graph(_model(nodes, {}))
    msg = str(e.value)
    assert "Sigmoid (2 nodes, first 'sig_a')" in msg and "Tanh (1 node, first 'tanh_a')" in msg
    onnx.save(_model(nodes, {}, out_shape=["N", 3, 8, 8]), str(tmp_path / "sig.onnx"))
    assert main(["import", str(tmp_path / "sig.onnx"), "-o", str(tmp_path / "sig.cnn")]) == 2
    assert "Sigmoid (2 nodes, first 'sig_a')" in capsys.readouterr().err
    assert not (tmp_path / "sig.cnn").exists()


def test_non_constant_weights_and_batch_dependent_shapes_are_refused():
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="c")
    graph = helper.make_graph([conv], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(OnnxImportError, match="one input"):
        to_graph(helper.make_model(graph))
    nodes = [helper.make_node("Relu", ["W0"], ["W"], name="w_relu"),
             helper.make_node("Conv", ["x", "W"], ["y"], name="c")]
    with pytest.raises(OnnxImportError, match="the weight 'W' is not a constant"):
        to_graph(_model(nodes, {"W0": _w(4, 3, 3, 3)}))
    nodes = [helper.make_node("Identity", ["W0"], ["W"], name="w_id"), helper.make_node("Conv", ["x", "W"], ["y"])]
    assert to_graph(_model(nodes, {"W0": _w(4, 3, 3, 3)}))[0].number_of_nodes() == 2  # Identity of a constant
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    with pytest.raises(OnnxImportError, match="INT64; cnnc networks take floating-point images"):
        to_graph(helper.make_model(graph))
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs")]
    with pytest.raises(OnnxImportError, match="batch-dependent"):
        to_graph(_model(nodes, {"shape": np.array([1, -1], np.int64)}))
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip8")]
    with pytest.raises(OnnxImportError, match=r"clip8.*Clip\(0.0, 8.0\)"):
        to_graph(_model(nodes, {"lo": np.float32(0), "hi": np.float32(8)}))


def test_malformed_nodes_are_refused_not_crashed_on():
    cases = [
        [helper.make_node("Conv", ["x"], ["y"], name="no_w")],
        [helper.make_node("Conv", ["x", "W"], ["y"], name="s0", strides=[0, 0])],
        [helper.make_node("Conv", ["x", "W"], ["y"], name="g0", group=0)],
        [helper.make_node("MaxPool", ["x"], ["y"], name="negpad", kernel_shape=[2, 2], pads=[-1, -1, -1, -1])],
        [helper.make_node("LRN", ["x"], ["y"], name="lrn0", size=0)],
    ]
    for nodes in cases:
        with pytest.raises(OnnxImportError, match=nodes[0].name):
            to_graph(_model(nodes, {"W": _w(4, 3, 3, 3)}))


@pytest.mark.parametrize("name", ["conv 1", "1st", "relu", "input", "expect", "a;import os", "x" * 200, "é/ü", ""])
def test_identifiers_are_valid_cnn_names(name):
    ident = identifier(name)
    g = parse(f"input 3x4x4\n{ident}: conv(2, 1)\n")
    assert ident in g.nodes and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident)


def test_node_names_from_the_file_never_become_code(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name='x"\n__import__("os").system("echo owned")#'),
             helper.make_node("Conv", ["r", "W"], ["y"], name="}\nblock evil() = {")]
    path = tmp_path / "evil.onnx"
    onnx.save(_model(nodes, {"W": _w(2, 3, 1, 1)}, out_shape=["N", 2, 8, 8]), str(path))
    assert main(["import", str(path), "-o", str(tmp_path / "evil.cnn")]) == 0
    text = (tmp_path / "evil.cnn").read_text()
    assert "__import__" not in text and "block evil" not in text
    assert load(tmp_path / "evil.cnn").number_of_nodes() == 3


# --- files and the command line -----------------------------------------------------------------

def test_cli_export_import_with_external_data(tmp_path, capsys):
    src = ARCHS / "inception_naive.cnn"
    onnx_path = tmp_path / "naive.onnx"
    assert main(["export", str(src), "-o", str(onnx_path), "--seed", "3", "--external-data"]) == 0
    assert (tmp_path / "naive.onnx.data").stat().st_size > onnx_path.stat().st_size
    cnn = tmp_path / "out" / "naive.cnn"
    cnn.parent.mkdir()
    assert main(["import", str(onnx_path), "-o", str(cnn)]) == 0
    g, g3 = load(src), load(cnn)
    p, p3 = P.init(g, seed=3), P.load(cnn.with_suffix(".npz"), g3)
    x = np.random.default_rng(11).standard_normal((1,) + g.nodes["input"]["shape"])
    assert relnorm(run(g3, p3, x), run(g, p, x)) < 1e-12
    (tmp_path / "naive.onnx.data").unlink()
    assert main(["import", str(onnx_path), "-o", str(cnn)]) == 2
    assert "external weight data" in capsys.readouterr().err


def test_not_onnx_truncated_and_corrupt_files_exit_2(tmp_path, capsys):
    good = tmp_path / "good.onnx"
    assert main(["export", str(ARCHS / "lenet5.cnn"), "-o", str(good)]) == 0
    data = good.read_bytes()
    cases = {"text.onnx": b"network lenet\ninput 1x32x32\n", "empty.onnx": b"", "half.onnx": data[: len(data) // 2],
             "flipped.onnx": data[:40] + bytes(b ^ 0xFF for b in data[40:80]) + data[80:]}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        assert main(["import", str(tmp_path / name), "-o", str(tmp_path / "x.cnn")]) == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and name in err
    assert main(["import", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.cnn")]) == 2
    with pytest.raises(OnnxImportError, match="no such file"):
        read_model(tmp_path / "missing.onnx")


def test_missing_onnx_says_how_to_install(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(ARCHS / "lenet5.cnn"), "-o", str(tmp_path / "l.onnx")]) == 2
    assert 'pip install -e ".[onnx]"' in capsys.readouterr().err
    assert main(["import", str(tmp_path / "l.onnx"), "-o", str(tmp_path / "l.cnn")]) == 2
    assert 'pip install -e ".[onnx]"' in capsys.readouterr().err


# --- ONNX Runtime as a second oracle on what archs/ does not exercise ---------------------------

def _seeds():
    pools = GraphBuilder("pools", (3, 9, 10))
    ys = [pools.layer("avgpool", pools.input, kernel=3, stride=2, pad=1, round="ceil"),
          pools.layer("avgpool", pools.input, kernel=3, stride=2, pad=1, round="ceil", count_pad=False),
          pools.layer("maxpool", pools.input, kernel=2, stride=2, pad=1, round="ceil"),
          pools.layer("avgpool", pools.input, kernel=4, stride=3, pad=2)]
    pools_g = pools.finish(pools.layer("concat", [pools.layer("flatten", y) for y in ys]))
    conv = GraphBuilder("ceil_conv", (4, 11, 11))
    x = conv.layer("conv", conv.input, filters=6, kernel=3, stride=2, round="ceil", groups=2)
    conv_g = conv.finish(conv.layer("conv", x, filters=3, kernel=2, stride=3, pad=1, round="ceil"))
    mixed = GraphBuilder("mixed", (4, 11, 11))
    x = mixed.layer("conv", mixed.input, filters=6, kernel=3, stride=2, groups=2)
    x = mixed.layer("batchnorm", x, eps=1e-3)
    y = mixed.layer("lrn", x, size=3, alpha=0.5, beta=0.6, k=1.5)
    x = mixed.layer("add", [x, y, x])
    x = mixed.layer("relu6", mixed.layer("gap", x))
    x = mixed.layer("batchnorm", mixed.layer("flatten", x))
    mixed_g = mixed.finish(mixed.layer("softmax", mixed.layer("fc", x, out=5)))
    return [pools_g, conv_g, mixed_g]


@pytest.mark.parametrize("g", _seeds(), ids=lambda g: g.graph["name"])
def test_reference_matches_onnxruntime_on_seed_graphs(g):
    p = {k: v * 3 if k.endswith(".weight") and v.ndim > 1 else v for k, v in P.random(g, seed=12).items()}
    x = np.random.default_rng(13).standard_normal((2,) + g.nodes["input"]["shape"])
    model, _, g3, p3 = roundtrip(g, p)
    ref = run(g, p, x)
    assert relnorm(ort_run(model, x), ref) < 1e-5
    assert relnorm(run(g3, p3, x), ref) < 1e-12


def test_even_lrn_is_not_exported():
    from cnnc.interop.onnx.export import ExportError

    g = parse("input 4x5x5\nlrn(4)\n")
    with pytest.raises(ExportError, match="even size"):
        to_onnx(g, {})
