"""The CUDA module as a runtime (issue 13): many threads on one Model, pickling, bounded
device buffers, in Numba's CUDA simulator.

The simulator must be on before Numba is imported, so the checks run in a fresh process:
this file executed as a script prints its findings as JSON. The simulator runs every CUDA
thread as a Python thread, so the network is a small one (a conv, a pool and an fc: the
kernels of LeNet-5 at a tenth of its size), generated here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = """
network small
input 2x6x6
conv(3, 3, pad=1) relu
maxpool(2)
flatten
fc(4)
"""


def _in_simulator() -> dict:
    import importlib.util
    import pickle
    import tempfile
    import threading

    import numpy as np

    from cnnc.codegen import generate
    from cnnc.frontend import parse
    from cnnc.passes.manager import run_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small_cuda.py"
        path.write_text(generate(run_pipeline(parse(SMALL, source="<small>"), 1, log=None), "cuda"))
        spec = importlib.util.spec_from_file_location("small_cuda", path)
        net = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = net
        spec.loader.exec_module(net)
    model = net.Model(net.init_params(1), keep_batch_sizes=2)
    xs = [np.random.default_rng(i).standard_normal((1 + i % 2, *net.INPUT_SHAPE)).astype(np.float32)
          for i in range(4)]
    serial = [model(x) for x in xs]
    got: list = [None] * len(xs)

    def call(i: int) -> None:
        got[i] = model(xs[i])

    pool = [threading.Thread(target=call, args=(i,)) for i in range(len(xs))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    model(xs[0][:1].repeat(3, axis=0))  # a third batch size: the least recently used one goes
    again = pickle.loads(pickle.dumps(model))
    return {
        "threads_equal": all(np.array_equal(a, b) for a, b in zip(got, serial, strict=True)),
        "pickle_equal": bool(np.array_equal(again(xs[1]), serial[1])),
        "pickle_keep": again.batch_sizes() == [2] and again._keep == 2,
        "kept": model.batch_sizes(),
    }


@pytest.mark.slow
def test_cuda_model_threads_pickle_and_bounded_buffers() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    res = json.loads(done.stdout.strip().splitlines()[-1])
    assert res == {"threads_equal": True, "pickle_equal": True, "pickle_keep": True, "kept": [2, 3]}


if __name__ == "__main__":
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    print(json.dumps(_in_simulator()))
