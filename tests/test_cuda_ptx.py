"""Every kernel of every generated CUDA module compiles to PTX for sm_80 and sm_90 and
assembles with ptxas; the module's kernel table holds what ptxas reported.

``cuda.compile_ptx`` needs NVVM but no GPU, and cannot run where the CUDA simulator is on,
so the compilation runs in a fresh process (this file executed as a script) with
``NUMBA_ENABLE_CUDASIM`` removed from its environment.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = sorted((ROOT / "generated").glob("*_cuda.py"))
ARCH_NAMES = ("sm_80", "sm_90")

# a kernel numba.cuda cannot compile: a shared-memory shape that is not a compile-time constant
BROKEN = '''
from numba import cuda, float32


@cuda.jit
def gap(x, y, total, c, hw, x_is, x_off, y_is, y_off):
    s = cuda.shared.array(hw, float32)
    s[0] = x[0]
    y[0] = s[0]
'''


def _worker(mode: str) -> dict:
    """In a process without the simulator: compile and assemble (see the module docstring)."""
    from cnnc.codegen.cuda_launch import signature
    from cnnc.codegen.cuda_ptx import ARCHS, arch_name, assemble, compile_ptx, measure, ptxas_path, recorded, toolchain
    from cnnc.codegen.loader import import_path

    if mode == "broken":
        try:
            measure({"gap": BROKEN})
        except Exception as e:  # noqa: BLE001 - what matters is that it does not pass
            return {"failed": True, "error": f"{type(e).__name__}: {e}"[:300]}
        return {"failed": False}
    ptxas = ptxas_path()
    same_toolchain = recorded().get("toolchain") == toolchain()
    seen: dict[tuple[str, str], dict] = {}
    modules: dict[str, dict] = {}
    for path in GENERATED:
        mod = import_path(path, f"ptxcheck_{path.stem}")
        modules[path.stem] = {}
        for name, row in mod.KERNELS.items():
            fn = getattr(mod, name).py_func
            key = (name, inspect.getsource(fn))
            if key not in seen:
                res = {}
                for cc in ARCHS:
                    ptx = compile_ptx(fn, signature(name), cc)
                    assert ".entry" in ptx
                    res[arch_name(cc)] = assemble(ptx, cc, ptxas) if ptxas else None
                seen[key] = res
            modules[path.stem][name] = {"measured": seen[key], "table": row["archs"]}
    return {"ptxas": ptxas, "same_toolchain": same_toolchain, "modules": modules, "distinct": len(seen)}


def _run_worker(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=900)
    assert r.returncode == 0, f"PTX worker failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_network_has_a_cuda_module() -> None:
    nets = {p.stem for p in (ROOT / "archs").glob("*.cnn")}
    assert nets, "no networks in archs/"
    assert {p.stem.removesuffix("_cuda") for p in GENERATED} == nets


@pytest.mark.slow
def test_every_kernel_compiles_for_sm80_and_sm90() -> None:
    res = _run_worker("all")
    assert res["distinct"] >= 5  # conv_gemm, gemm, gemv, pool and more across the networks
    for module, kernels in res["modules"].items():
        assert kernels, f"{module} has no kernels"
        for name, k in kernels.items():
            for arch in ARCH_NAMES:
                measured = k["measured"][arch]
                if res["ptxas"] is None:
                    continue  # PTX only: nothing to assemble on this machine
                assert measured["spill_bytes"] == 0, (module, name, arch, measured)
                assert measured["registers"] <= 255
                if res["same_toolchain"]:
                    # the committed table is what ptxas says now (refresh: python -m cnnc.codegen.cuda_ptx)
                    assert k["table"][arch] == measured, (module, name, arch)


@pytest.mark.slow
def test_a_kernel_that_does_not_compile_fails() -> None:
    res = _run_worker("broken")
    assert res["failed"], res


def test_recorded_resources_cover_every_kernel() -> None:
    """Every kernel the templates render has ptxas numbers on record for both architectures."""
    from cnnc.codegen.cuda import kernel_sources
    from cnnc.codegen.cuda_ptx import lookup

    table = lookup(kernel_sources())
    missing = [k for k, v in table.items() if sorted(v) != list(ARCH_NAMES)]
    assert not missing, f"no ptxas numbers for {missing}: run python -m cnnc.codegen.cuda_ptx"
    for k, v in table.items():
        for arch in ARCH_NAMES:
            assert v[arch]["registers"] > 0, (k, arch)


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1])))
