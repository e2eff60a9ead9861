"""The relu6 layer (ONNX Clip(0, 6), MobileNet's activation): language, reference, PyTorch oracle,
the generated CPU module, and the CUDA kernel in the simulator.

Weights are scaled up so that many values land above 6 and below 0 (both bounds are exercised).
Bounds: float64 paths agree to 1e-12; float32 compiled code to 1e-5 relative-norm (a few float32
roundings per value, shallow network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnc import params as P
from cnnc.codegen import write
from cnnc.codegen.loader import import_path
from cnnc.frontend import parse
from cnnc.passes.manager import run_pipeline
from cnnc.runtime.reference import run, run_all

ROOT = Path(__file__).resolve().parents[1]
NET = """
network relu6_net
input 3x9x9
c1: conv(8, 3, pad=1) relu6
block sep(w) = { conv(8, 3, pad=1, groups=8) relu6 conv(w, 1) relu6 }
s1: sep(12)
gap flatten
f: fc(5) relu6
"""


def relnorm(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def setup() -> tuple:
    g = parse(NET)
    p = {k: v * 4 if k.endswith(".weight") else v for k, v in P.random(g, seed=1).items()}
    x = np.random.default_rng(2).standard_normal((3, 3, 9, 9)) * 2
    return g, p, x


def test_reference_clamps_to_zero_and_six():
    g, p, x = setup()
    vals = run_all(g, p, x)
    r6 = [n for n in g.nodes if g.nodes[n]["op"].kind == "relu6"]
    assert len(r6) == 4 and g.nodes[r6[0]]["cost"].other_ops == 8 * 9 * 9
    before = vals[g.nodes[r6[0]]["inputs"][0]]
    assert (before > 6).any() and (before < 0).any()
    np.testing.assert_array_equal(vals[r6[0]], np.clip(before, 0, 6))


def test_reference_matches_pytorch_relu6():
    pytest.importorskip("torch")
    from cnnc.interop.torch import run_torch

    g, p, x = setup()
    assert relnorm(run(g, p, x), run_torch(g, p, x)) < 1e-12


@pytest.mark.parametrize("level", [1])  # relu6 stays a layer at -O1 too (only relu fuses); JIT costs ~10 s a module
def test_cpu_module_matches_reference(level, tmp_path):
    g, p, x = setup()
    opt = run_pipeline(g, level, log=None)
    opt.graph["name"] = f"relu6_O{level}"
    mod = import_path(write(opt, "cpu", tmp_path))
    assert "def relu6(" in Path(mod.__file__).read_text()
    y = mod.Model(p)(x.astype(np.float32))
    assert relnorm(y, run(g, p, x)) < 1e-5


def _simulate() -> dict:
    """In a CUDA-simulator process: generate the CUDA module, run it, compare with the reference."""
    import importlib.util
    import tempfile

    from cnnc.codegen import generate

    g, p, x = setup()
    src = generate(run_pipeline(g, 1, log=None), "cuda")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relu6_net_cuda.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("relu6_net_cuda", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    y = mod.Model(p)(x.astype(np.float32))
    return {"err": relnorm(y, run(g, p, x)), "kernels": sorted(mod.KERNELS)}


@pytest.mark.slow
def test_cuda_kernel_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert "relu6" in res["kernels"] and res["err"] < 1e-5, res


if __name__ == "__main__":
    print(json.dumps(_simulate()))
