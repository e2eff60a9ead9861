"""The numerical tests hold on other BLAS kernels and CPU targets (issue 13, item 3).

A float32 answer's last bits depend on the GEMM kernel OpenBLAS picks for the CPU and on the
instructions Numba compiles the kernels for. The bounds in tests/numerics.py come from the
float64 reference, so a small numerical subset of the suite must pass unchanged when this
machine pretends to be another one: re-run here in subprocesses under

* ``OPENBLAS_CORETYPE=Haswell`` (AVX2 kernels: the machine of the issue; CI's may have AVX-512),
* the same with ``NUMBA_CPU_NAME=haswell`` and ``NUMBA_CPU_FEATURES`` of an AVX2 CPU (Numba's code without
  AVX-512 on any host: direct1x1 then builds its AVX2 register block),
* ``OPENBLAS_CORETYPE=Sandybridge`` (AVX) with ``NUMBA_CPU_NAME=generic`` (baseline x86-64
  code for the kernels), with its own ``NUMBA_CACHE_DIR`` so that machine code compiled for
  the generic CPU is kept apart from the cache beside the generated modules.

``OPENBLAS_VERBOSE=2`` makes OpenBLAS print the core it uses (to the file descriptor, which
``--capture=sys`` leaves alone), so the test sees the choice took.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSET = [
    "tests/test_generated_hardening.py::test_new_batch_size_reallocates",
    "tests/test_codegen_cpu.py::test_generated_module_matches_reference[lenet5]",
    "tests/test_codegen_cpu.py::test_batch_size_changes_and_forward",
    "tests/test_runtime_cpu.py::test_concurrent_calls_on_one_model_give_the_serial_answers",
    # every conv strategy (im2col, gemm1x1, the register blocks, depthwise, the Winograds, kn2row) in one model
    "tests/test_kernels.py::test_a_whole_model_with_every_strategy_matches_the_reference",
    # the register blocks are chosen by the CPU features: their masked edges under each block
    "tests/test_kernels.py::test_direct1x1_block_edges",
    "tests/test_kernels.py::test_direct1x1_register_block_follows_the_cpu_features",
    "tests/test_kernels.py::test_oc_block_edges",
    "tests/test_kernels.py::test_depthwise_oc_edges",
    "tests/test_kernels.py::test_direct_edges",
    "tests/test_kernels.py::test_direct_bands_only_rows_that_fill_the_blocks_badly",
    "tests/test_kernels_other.py::test_maxpool_network_shapes",
    # blocked tensors (channel blocks of the CPU's lanes: 8 under AVX2), the kernels and three modules
    "tests/test_layout.py::test_kernels_read_and_write_either_layout",
    "tests/test_layout.py::test_a_module_with_blocked_tensors_matches_the_reference",
    "tests/test_layout.py::test_one_image_gathered_by_the_threads_together",
]
#: tests the subset runs: test_direct1x1_block_edges has seven cases, test_oc_block_edges ten, test_depthwise_oc_edges
#: six, test_direct_edges eight, test_maxpool_network_shapes eight, the blocked-tensor modules three, the shared
#: gather two
SUBSET_TESTS = len(SUBSET) + 6 + 9 + 5 + 7 + 7 + 2 + 1
#: an AVX2 CPU's features (Haswell) for NUMBA_CPU_FEATURES: Numba then compiles without AVX-512, whatever the host
AVX2_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,"
                 "+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")
SETTINGS = {
    "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    # AVX2 kernels from Numba too: direct1x1's 4 x 24 register block, the output-channel blocks' 2 x 8 x 5
    "haswell-avx2": {"OPENBLAS_CORETYPE": "Haswell", "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2_FEATURES},
    "sandybridge-generic": {"OPENBLAS_CORETYPE": "Sandybridge", "NUMBA_CPU_NAME": "generic"},
}


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="OpenBLAS core types of x86-64")
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_numerical_subset_under_another_blas_kernel(setting: str, tmp_path: Path) -> None:
    env = {**os.environ, **SETTINGS[setting], "OPENBLAS_VERBOSE": "2"}
    if "NUMBA_CPU_NAME" in env:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys", *SUBSET],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert f"{SUBSET_TESTS} passed" in out, out[-4000:]
    assert f"Core: {SETTINGS[setting]['OPENBLAS_CORETYPE']}" in out, out[-4000:]
