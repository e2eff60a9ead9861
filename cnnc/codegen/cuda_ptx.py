"""PTX compilation and ``ptxas`` resource usage of the CUDA kernels, without a GPU.

``numba.cuda.compile_ptx`` needs NVVM (``numba-cuda[cu12]``) but no driver; it cannot run
in a process where the CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``). ``ptxas -v``
assembles the PTX for a real architecture and reports registers, shared memory, stack and
spills per kernel.

Generated modules carry a table of these numbers. Generation must be fast and
deterministic, so the numbers come from ``cuda_resources.json`` beside this file, keyed by
the SHA-256 of each kernel's rendered source and signature; ``python -m
cnnc.codegen.cuda_ptx`` recompiles every kernel and rewrites that file (``tests/test_cuda_ptx.py``
recompiles them too, and fails when the recorded numbers are stale for this toolchain).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ARCHS: tuple[tuple[int, int], ...] = ((8, 0), (9, 0))
RESOURCES_FILE = Path(__file__).with_name("cuda_resources.json")

_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def arch_name(cc: tuple[int, int]) -> str:
    return f"sm_{cc[0]}{cc[1]}"


def kernel_key(source: str, signature: str) -> str:
    """The cache key of one kernel: its rendered source and signature."""
    return hashlib.sha256(f"{signature}\n{source}".encode()).hexdigest()[:16]


def ptxas_path() -> str | None:
    """``ptxas`` on PATH, else the one ``numba-cuda[cu12]`` ships (nvidia-cuda-nvcc), else None."""
    found = shutil.which("ptxas")
    if found:
        return found
    try:
        import nvidia.cuda_nvcc  # type: ignore[import-not-found]
    except ImportError:
        return None
    for base in getattr(nvidia.cuda_nvcc, "__path__", []):
        cand = Path(base) / "bin" / "ptxas"
        if cand.exists():
            return str(cand)
    return None


def toolchain() -> dict[str, str]:
    """Versions that determine the numbers (NVVM via numba-cuda, and ptxas)."""
    from importlib.metadata import version

    out = {"numba-cuda": version("numba-cuda")}
    ptxas = ptxas_path()
    if ptxas:
        text = subprocess.run([ptxas, "--version"], capture_output=True, text=True, check=True).stdout
        out["ptxas"] = text.strip().splitlines()[-1]
    return out


def load_module(path: Path, name: str):
    """Import a Python file as module ``name`` (registered in ``sys.modules`` first)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def compile_ptx(fn, signature: str, cc: tuple[int, int]) -> str:
    """The PTX of the Python function ``fn`` (a kernel's ``py_func``) for ``cc``."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise RuntimeError("cuda.compile_ptx cannot run with NUMBA_ENABLE_CUDASIM=1: use another process")
    from numba import cuda

    ptx, _ = cuda.compile_ptx(fn, signature, cc=cc)
    return ptx


def assemble(ptx: str, cc: tuple[int, int], ptxas: str) -> dict[str, int]:
    """Assemble ``ptx`` with ``ptxas -v`` and return its resource usage.

    Raises ``RuntimeError`` with ptxas's message when the PTX does not assemble.
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        r = subprocess.run([ptxas, "-v", f"-arch={arch_name(cc)}", str(src), "-o", str(Path(tmp) / "k.cubin")],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ptxas failed for {arch_name(cc)}:\n{r.stderr}")
    used = _USED.search(r.stderr)
    stack = _STACK.search(r.stderr)
    if used is None or stack is None:
        raise RuntimeError(f"cannot read ptxas -v output:\n{r.stderr}")
    return {
        "registers": int(used.group(1)),
        "shared_bytes": int(used.group(3) or 0),
        "stack_bytes": int(stack.group(1)),
        "spill_bytes": int(stack.group(2)) + int(stack.group(3)),
    }


def measure(sources: dict[str, str]) -> dict[str, dict]:
    """Compile each kernel (``name -> rendered source of a module defining only it``) for
    every arch in :data:`ARCHS` and assemble it: ``{key: {"kernel", "sm_80": {...}, ...}}``."""
    from .cuda_launch import signature

    ptxas = ptxas_path()
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in sources.items():
            sig = signature(name)
            path = Path(tmp) / f"cnnc_kernel_{name}.py"
            path.write_text(source)
            mod = load_module(path, f"cnnc_kernel_{name}")
            fn = getattr(mod, name).py_func
            entry: dict[str, object] = {"kernel": name}
            for cc in ARCHS:
                ptx = compile_ptx(fn, sig, cc)
                entry[arch_name(cc)] = assemble(ptx, cc, ptxas) if ptxas else {"ptx_lines": ptx.count("\n")}
            out[kernel_key(source, sig)] = entry
            sys.modules.pop(f"cnnc_kernel_{name}", None)
    return out


def recorded() -> dict:
    """The committed resource table (empty when missing)."""
    if not RESOURCES_FILE.exists():
        return {"toolchain": {}, "kernels": {}}
    return json.loads(RESOURCES_FILE.read_text())


def lookup(sources: dict[str, str]) -> dict[str, dict]:
    """``{kernel name: {arch: resources}}`` from the committed table; a kernel whose source
    is not recorded maps to ``{}`` (run ``python -m cnnc.codegen.cuda_ptx`` to record it)."""
    from .cuda_launch import signature

    table = recorded()["kernels"]
    out: dict[str, dict] = {}
    for name, source in sources.items():
        entry = table.get(kernel_key(source, signature(name)), {})
        out[name] = {a: v for a, v in entry.items() if a != "kernel"}
    return out


def update() -> dict:
    """Recompile every kernel the templates can render and rewrite :data:`RESOURCES_FILE`."""
    from .cuda import kernel_sources

    data = {"toolchain": toolchain(), "kernels": measure(kernel_sources())}
    RESOURCES_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


if __name__ == "__main__":
    result = update()
    for key, entry in result["kernels"].items():
        print(key, entry)
