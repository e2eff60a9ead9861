"""Every network's committed CUDA module on a real GPU against the float64 reference.

These tests need an NVIDIA GPU (``numba.cuda.is_available()``); on machines without one
they are skipped, and the CUDA path is covered by tests/test_cuda_sim.py (simulator) and
tests/test_cuda_ptx.py (PTX + ptxas). Run them wherever a GPU is lent:
``python -m pytest tests/test_cuda_gpu.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = sorted(p.stem for p in (ROOT / "archs").glob("*.cnn"))


def _gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    from numba import cuda

    return bool(cuda.is_available())


pytestmark = pytest.mark.skipif(not _gpu(), reason="needs an NVIDIA GPU (see the module docstring)")


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_generated_cuda_module_matches_reference_on_gpu(name: str) -> None:
    from cnnc.codegen.loader import import_path
    from cnnc.frontend import load
    from cnnc.params import random
    from cnnc.runtime.reference import run

    g = load(str(ROOT / "archs" / f"{name}.cnn"))
    mod = import_path(ROOT / "generated" / f"{name}_cuda.py")  # as generated.<name>_cuda (Numba's cache)
    params = random(g, seed=5)
    model = mod.Model(params)
    for batch in (1, 3, 9):  # 9: fc layers take the tiled-GEMM path
        x = np.random.default_rng(batch).standard_normal((batch,) + tuple(mod.INPUT_SHAPE)).astype(np.float32)
        y = model(x)
        ref = run(g, params, x, dtype=np.float64)
        assert y.shape == ref.shape
        err = float(np.abs(y - ref).max() / np.abs(ref).max())
        assert err <= 1e-4, (name, batch, err)
