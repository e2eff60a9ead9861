"""Cold and cached compile times of the generated CPU modules (issue 4's targets: <= 30 s, <= 2 s).

    python benchmarks/compile_times.py [NET ...]

Each module of generated/ is copied to a fresh temporary directory (an empty Numba cache)
and imported in a new process that builds a Model and makes one call at batch 1: the
*cold* time. A second process does the same with the cache the first one left: the
*cached* time. Both include the interpreter's imports of numpy and numba. The cold first call
compiles in one process per core (the module's own parallel compile); CNNC_COMPILE_JOBS=1 in the
environment measures one kernel at a time instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
m = __import__(sys.argv[2])
t1 = time.perf_counter()
model = m.Model(m.init_params())
t2 = time.perf_counter()
model(np.zeros((1,) + m.INPUT_SHAPE, np.float32))
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "first_call": t3 - t2}))
"""


def measure(net: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(ROOT / "generated" / f"{net}_cpu.py", Path(d) / f"{net}_cpu.py")
        out = {}
        for label in ("cold", "cached"):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, d, f"{net}_cpu"], capture_output=True, text=True,
                               check=True)
            wall = time.perf_counter() - t0
            parts = json.loads(r.stdout.strip().splitlines()[-1])
            out[label] = parts["import"] + parts["first_call"]  # import + first call (weights init apart)
            out[label + "_process"] = wall
        return out


def main(argv: list[str]) -> int:
    nets = argv or sorted(p.stem.removesuffix("_cpu") for p in (ROOT / "generated").glob("*_cpu.py"))
    print(f"{'network':<22} {'cold s':>8} {'cached s':>9}   (import + first call; whole process in brackets)")
    for net in nets:
        t = measure(net)
        print(f"{net:<22} {t['cold']:>8.1f} {t['cached']:>9.2f}   ({t['cold_process']:.1f}, {t['cached_process']:.1f})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
