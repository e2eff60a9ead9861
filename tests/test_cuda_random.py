"""Random graphs (the generator of tests/test_passes_random.py: inception-like branches,
sibling 1x1 convs that horizontal fusion turns into channel slices, in-place concats, adds,
batchnorms, pools with ceil rounding, grouped and strided convs, fc heads) compiled to CUDA
modules at -O0 and -O1 and run in Numba's CUDA simulator against the float64 reference.

The simulator needs its own process: this file executed as a script runs a fixed,
derandomised sample of graphs and prints one JSON line per graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from numerics import TOL32

ROOT = Path(__file__).resolve().parents[1]
TOL = TOL32  # float32 against the float64 reference: tests/numerics.py derives the bound
EXAMPLES = 12


def _main() -> None:
    import importlib.util
    import tempfile

    import numpy as np
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, str(ROOT / "tests"))
    from test_passes_random import graphs

    from cnnc.codegen import generate
    from cnnc.params import random
    from cnnc.passes.manager import run_pipeline
    from cnnc.runtime.reference import run

    count = [0]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(graphs(), st.sampled_from([(0, ()), (1, ()), (1, ("hfuse:include_concat_inputs=true",))]))
    def check(g, how) -> None:
        level, extra = how
        count[0] += 1
        h = run_pipeline(g, level, passes=extra, log=None)
        src = generate(h, "cuda")
        name = f"random_cuda_{count[0]}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.py"
            path.write_text(src)
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        params = random(g, seed=count[0])
        x = np.random.default_rng(count[0]).standard_normal((2,) + tuple(mod.INPUT_SHAPE)).astype(np.float32)
        y = mod.Model(params)(x)
        ref = run(g, params, x, dtype=np.float64)
        err = float(np.abs(y - ref).max() / max(float(np.abs(ref).max()), 1e-30))
        print(json.dumps({"nodes": len(g), "level": level, "extra": list(extra), "kernels": sorted(mod.KERNELS),
                          "rel_err": err, "shape_ok": y.shape == ref.shape}), flush=True)
        assert y.shape == ref.shape and err <= TOL, (err, [str(g.nodes[n]["op"]) for n in g.nodes])

    check()


@pytest.mark.slow
def test_random_graphs_on_the_simulator() -> None:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) >= EXAMPLES
    assert all(row["shape_ok"] and row["rel_err"] <= TOL for row in rows)
    assert {row["level"] for row in rows} == {0, 1}


if __name__ == "__main__":
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        sys.exit("run through pytest, or with NUMBA_ENABLE_CUDASIM=1")
    _main()
