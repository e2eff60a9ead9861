"""A concat that grows layer by layer (DenseNet's dense block) lives in one buffer, written once per layer,
and its pre-activation ``bn relu`` runs as one batchnorm step.

Each dense layer reads the concat so far and appends its own features; concat elimination nests every
concat in place inside the next one, so the generated module copies nothing, and its output equals the
float64 reference (CPU here; the CUDA simulator runs the same network in tests/test_cuda_sim.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
from numerics import TOL32, rel_err

from cnnc.codegen import generate
from cnnc.codegen.schedule import schedule
from cnnc.frontend import parse
from cnnc.params import random
from cnnc.passes.manager import run_pipeline
from cnnc.passes.verify import problems
from cnnc.runtime.reference import run

DENSE = """
network dense_tiny
input 3x10x10
stem: conv(16, 3, pad=1) relu
block dense(g) = concat {
    identity
    bn relu conv(16, 1, bias=false) bn relu conv(g, 3, pad=1, bias=false)
}
d1: dense(8)
d2: dense(8)
d3: dense(8)
d4: dense(8)
trans: bn relu conv(12, 1)
pool: gap
flatten
"""


def test_dense_block_concats_nest_in_place_and_copy_nothing() -> None:
    g = run_pipeline(parse(DENSE, source="<dense>"), 1, log=None)
    assert problems(g) == []
    concats = [n for n in g.nodes if g.nodes[n]["op"].kind == "concat"]
    assert sorted(concats) == ["d1", "d2", "d3", "d4"]
    assert all(g.nodes[n]["op"].get("inplace") for n in concats)
    # the pre-activation `bn relu` before each 1x1 conv is one batchnorm step applying the ReLU as it writes
    bns = [n for n in g.nodes if g.nodes[n]["op"].kind == "batchnorm"]
    assert len(bns) == 5 and all(g.nodes[n]["op"].get("act") == "relu" for n in bns)
    assert not any(g.nodes[n]["op"].kind == "relu" for n in g.nodes)
    plan = schedule(g)
    assert [s for s in plan.steps if s.kind == "copy"] == []
    # every concat and the layer outputs inside it share the last concat's buffer, at their channel offsets
    refs = {s.node: s.output for s in plan.steps}
    assert len({refs[n].buffer for n in concats}) == 1
    assert [refs[n].offset for n in concats] == [0, 0, 0, 0]
    assert refs["d4/b2/conv2"].offset == 40 * 10 * 10  # after 16 stem + 3 x 8 channels


def test_dense_block_module_matches_reference(tmp_path: Path) -> None:
    src_graph = parse(DENSE, source="<dense>")
    g = run_pipeline(src_graph, 1, log=None)
    path = tmp_path / "dense_tiny_cpu.py"
    path.write_text(generate(g, "cpu"))
    spec = importlib.util.spec_from_file_location("dense_tiny_cpu", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    params = random(src_graph, seed=5)
    model = mod.Model(params)
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, *mod.INPUT_SHAPE)).astype(np.float32)
        assert rel_err(model(x), run(src_graph, params, x)) <= TOL32


def test_fused_batchnorm_relu_in_the_torch_oracle_and_onnx_export() -> None:
    """The -O1 graph (fused ``bn relu``, nested in-place concats) runs the same in PyTorch and ONNX Runtime."""
    import onnxruntime as ort

    from cnnc.interop.onnx.export import to_onnx
    from cnnc.interop.torch import run_torch

    src_graph = parse(DENSE, source="<dense>")
    g = run_pipeline(src_graph, 1, log=None)
    params = random(src_graph, seed=6)
    x = np.random.default_rng(2).standard_normal((2, 3, 10, 10)).astype(np.float32)
    ref = run(src_graph, params, x)
    assert rel_err(run_torch(g, params, x), ref) <= 1e-12  # float64 PyTorch: the same arithmetic
    sess = ort.InferenceSession(to_onnx(g, params).SerializeToString(), providers=["CPUExecutionProvider"])
    assert rel_err(sess.run(None, {"input": x})[0], ref) <= TOL32
