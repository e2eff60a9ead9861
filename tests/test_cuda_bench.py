"""``cnnc bench --target cuda``: refuses clearly without a GPU, and runs its whole timing path
(CUDA-event timing falls back to wall clock, PyTorch comparison on a CPU-only build) in Numba's
CUDA simulator, labelled as unmeasured. Each case runs ``cnnc`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = """network tiny_bench
input 3x6x6
conv(4, 3, pad=1) relu
maxpool(2)
flatten
fc(5)
softmax
"""


def _cnnc(args: list[str], sim: bool, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if sim:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "cnnc", *args], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=600)


def test_bench_cuda_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    from numba import cuda

    if cuda.is_available():
        pytest.skip("this machine has a GPU: the no-GPU message cannot be shown here")
    src = tmp_path / "tiny.cnn"
    src.write_text(TINY)
    r = _cnnc(["bench", str(src), "--target", "cuda", "-o", str(tmp_path / "gen")], sim=False, tmp=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "no CUDA GPU is available" in r.stderr and "NUMBA_ENABLE_CUDASIM=1" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_bench_cuda_runs_in_the_simulator(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    src = tmp_path / "tiny.cnn"
    src.write_text(TINY)
    r = _cnnc(["bench", str(src), "--target", "cuda", "--batch", "1,2", "--runs", "2", "--compare", "torch",
               "--per-layer", "-o", str(tmp_path / "gen")], sim=True, tmp=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Numba CUDA simulator" in out and "UNMEASURED" in out
    assert "disagree" not in r.stderr  # cnnc's CUDA module and PyTorch gave the same answer
    table = out.split("per kernel launch")[0]
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        assert len(row) == 7  # batch, ms/batch, ms/image, GFLOP/s, call ms, torch ms, ratio
        assert all(float(v) > 0 for v in row[1:3])
    assert (tmp_path / "gen" / "tiny_bench_cuda.py").exists()
    layers = out.split("per kernel launch, batch 2")[1]
    for layer in ("conv1", "maxpool1", "fc1", "softmax1"):  # one launch each at -O1 (ReLU fused)
        assert f"  {layer}  " in layers, layers


def test_per_launch_gflops_only_on_the_launch_that_does_the_macs() -> None:
    """A conv whose residual add runs as a second launch (add2) under the same layer name: the
    add's line has no GFLOP/s (on an H200 it was credited with the conv's MACs, 11 TFLOP/s)."""
    import networkx as nx

    from cnnc.cuda_bench import launch_lines

    class Cost:
        macs = 1_000_000

    g = nx.DiGraph()
    g.add_node("conv2", cost=Cost())
    lines = launch_lines(g, [("conv2", "gemm", 0.5), ("conv2", "add2", 0.25)], 1, 0.75)
    first, second = (line.split() for line in lines)
    assert first == ["0.500", "66.7", "4.0", "conv2", "gemm"]  # 2 x 1e6 MACs in 0.5 ms = 4 GFLOP/s
    assert second == ["0.250", "33.3", "conv2", "add2"]
