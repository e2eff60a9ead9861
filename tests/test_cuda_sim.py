"""Generated CUDA modules run in Numba's CUDA simulator against the float64 reference.

The simulator must be switched on before numba is imported and cannot share a process
with ``cuda.compile_ptx`` (tests/test_cuda_ptx.py), so every case runs in a fresh Python
process: this file executed as a script (``python tests/test_cuda_sim.py CASE``) sets
``NUMBA_ENABLE_CUDASIM=1``, generates the module, runs it and prints the relative error
as JSON. The simulator runs every CUDA thread as a Python thread (slow), so the networks
are the shipped ones at reduced size where needed; the kernels are the same.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from numerics import TOL32

ROOT = Path(__file__).resolve().parents[1]
TOL = TOL32  # float32 against the float64 reference: tests/numerics.py derives the bound

# one inception module of GoogLeNet (archs/googlenet.cnn, block `inception`, module 3a's widths
# 64, 96, 128, 16, 32, 32 on 192 channels) at 4x4 instead of 28x28
GOOGLENET_3A_SMALL = """
network googlenet_3a_small
input 192x4x4
block inception(c1, c3r, c3, c5r, c5, pp) = concat {
    conv(c1, 1) relu
    conv(c3r, 1) relu conv(c3, 3, pad=1) relu
    conv(c5r, 1) relu conv(c5, 5, pad=2) relu
    maxpool(3, stride=1, pad=1) conv(pp, 1) relu
}
i3a: inception(64, 96, 128, 16, 32, 32)
"""

# every op kind and kernel variant the shipped networks do not reach in the cases above:
# grouped strided conv, LRN, ceil avg pooling with and without counting the padding,
# batchnorm, a residual add, gap, fc through the GEMM path (batch > 8), softmax
OPS_ZOO = """
network ops_zoo
input 6x9x9
conv(8, 3, stride=2, pad=1, groups=2) relu
lrn(size=3, alpha=0.01, beta=0.75, k=2)
avgpool(3, stride=2, pad=1, round=ceil)
add {
    identity
    batchnorm
    avgpool(3, stride=1, pad=1, round=ceil, count_pad=false)
}
gap
flatten
fc(10) relu
fc(7)
softmax
"""

# residual blocks as ResNet writes them (archs/resnet18.cnn's basic and down blocks, narrower and on a 6x6
# input), plus a three-branch add: at -O1 each add carries its ReLU and the convs their batchnorm and ReLU
RESIDUAL_SMALL = """
network residual_small
input 4x6x6
conv(8, 3, pad=1, bias=false) bn relu
add {
    conv(8, 3, pad=1, bias=false) bn relu conv(8, 3, pad=1, bias=false) bn
    identity
} relu
add {
    conv(8, 3, stride=2, pad=1, bias=false) bn relu conv(8, 3, pad=1, bias=false) bn
    conv(8, 1, stride=2, bias=false) bn
    maxpool(2, stride=2)
} relu
gap
flatten
fc(5)
"""

# a DenseNet-style dense block (the concat grows by one layer's features per layer; pre-activation batchnorm +
# ReLU before each conv): at -O1 the concats nest in place, every layer writing into one growing buffer
DENSE_SMALL = """
network dense_small
input 3x6x6
conv(6, 3, pad=1) relu
block dense(g) = concat {
    identity
    bn relu conv(8, 1, bias=false) bn relu conv(g, 3, pad=1, bias=false)
}
d1: dense(4)
d2: dense(4)
d3: dense(4)
bn relu conv(5, 1)
gap
flatten
"""

# depthwise convs as MobileNet writes them (groups = channels, stride 1 and 2), one with two outputs per input
# channel, and one whose residual add is fused into it (dwconv has no residual epilogue: an add2 follows it)
DEPTHWISE_SMALL = """
network depthwise_small
input 4x7x7
conv(8, 3, pad=1) relu
conv(8, 3, pad=1, groups=8) relu
conv(16, 3, stride=2, pad=1, groups=8) relu
add {
    conv(16, 3, pad=1, groups=16)
    identity
} relu
gap
flatten
fc(5)
"""


def shrunk(name: str, channels: int = 8, size: int = 5) -> str:
    """``archs/<name>.cnn`` with every width divided by ``channels`` and a ``size`` x ``size`` input."""
    text = (ROOT / "archs" / f"{name}.cnn").read_text()
    text = re.sub(r"conv\((\d+)", lambda m: f"conv({max(2, int(m[1]) // channels)}", text)
    return re.sub(r"^input (\d+)x\d+x\d+", lambda m: f"input {int(m[1]) // channels}x{size}x{size}", text,
                  flags=re.M)


def _case(name: str) -> tuple[str, int, int]:
    """(source text, -O level, batch) of a case."""
    if name == "lenet5":
        return (ROOT / "archs" / "lenet5.cnn").read_text(), 1, 2
    if name == "lenet5_O0":
        return (ROOT / "archs" / "lenet5.cnn").read_text(), 0, 1
    if name in ("inception_naive", "inception_reduced", "conv5x5", "conv5x5_bottleneck"):
        return shrunk(name), 1, 2
    if name == "googlenet_3a":
        return GOOGLENET_3A_SMALL, 1, 1
    if name == "residual":
        return RESIDUAL_SMALL, 1, 2
    if name == "dense":
        return DENSE_SMALL, 1, 2
    if name == "depthwise":
        return DEPTHWISE_SMALL, 1, 2
    if name == "ops_zoo":
        return OPS_ZOO, 1, 9
    if name == "ops_zoo_O0":
        return OPS_ZOO, 0, 3
    raise KeyError(name)


def _run(name: str) -> dict:
    """In this (simulator) process: generate, run and compare one case."""
    import importlib.util
    import tempfile

    import numpy as np

    from cnnc.codegen import generate
    from cnnc.frontend import parse
    from cnnc.params import random
    from cnnc.passes.manager import run_pipeline
    from cnnc.runtime.reference import run

    text, level, batch = _case(name)
    g = parse(text, source=f"<{name}>")
    opt = run_pipeline(g, level, log=None)
    src = generate(opt, "cuda")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}_cuda.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(f"{name}_cuda", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    params = random(g, seed=3)
    x = np.random.default_rng(7).standard_normal((batch,) + tuple(mod.INPUT_SHAPE)).astype(np.float32)
    y = mod.Model(params)(x)
    ref = run(g, params, x, dtype=np.float64)
    err = float(np.abs(y - ref).max() / np.abs(ref).max())
    return {"case": name, "shape": list(y.shape), "ref_shape": list(ref.shape), "rel_err": err,
            "kernels": sorted(mod.KERNELS), "nonzero": bool(np.abs(ref).max() > 0)}


def simulate(name: str) -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, f"simulator case {name} failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


CASES = {
    # case: kernels it must exercise
    "lenet5": {"conv_gemm", "pool", "gemv"},
    "lenet5_O0": {"conv_gemm", "pool", "gemv", "channel_map"},
    "inception_naive": {"gemm", "conv_gemm", "pool"},
    "inception_reduced": {"gemm", "conv_gemm", "pool"},
    "conv5x5": {"conv_gemm"},
    "conv5x5_bottleneck": {"gemm", "conv_gemm"},
    "googlenet_3a": {"gemm", "conv_gemm", "pool"},
    "residual": {"conv_gemm", "gemm", "add2", "gap", "gemv"},
    "dense": {"conv_gemm", "gemm", "channel_map", "gap"},
    "depthwise": {"conv_gemm", "dwconv", "add2", "gap", "gemv"},
    "ops_zoo": {"conv_gemm", "lrn", "pool", "channel_map", "add2", "gap", "gemm", "softmax"},
    "ops_zoo_O0": {"conv_gemm", "lrn", "pool", "channel_map", "add2", "gap", "gemv", "softmax"},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_module_matches_reference_in_simulator(name: str) -> None:
    res = simulate(name)
    assert res["shape"] == res["ref_shape"]
    assert res["nonzero"]
    assert CASES[name] <= set(res["kernels"]), res["kernels"]
    if name == "residual":  # every ReLU fused (into the convs and the adds), every batchnorm folded
        assert "channel_map" not in res["kernels"], res["kernels"]
    assert res["rel_err"] <= TOL, res


def test_shrunk_keeps_structure() -> None:
    text = shrunk("inception_naive")
    assert "input 32x5x5" in text
    assert "conv(16, 1)" in text and "conv(12, 5" in text


if __name__ == "__main__":
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        sys.exit("run through pytest, or with NUMBA_ENABLE_CUDASIM=1")
    print(json.dumps(_run(sys.argv[1])))
