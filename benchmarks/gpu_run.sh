#!/usr/bin/env bash
# Everything cnnc checks on a real NVIDIA GPU, in one go (the CI machines have none):
#   1. the GPU, driver, numba / numba-cuda versions and a one-kernel smoke test;
#   2. tests/test_cuda_gpu.py: every network's committed CUDA module against the float64 reference;
#   3. `cnnc bench --target cuda --compare torch` for every network of archs/ (CUDA events, median).
# Usage: benchmarks/gpu_run.sh [LOGDIR]   (logs: env.log, tests.log, bench.log; default out/gpu)
# NETS="archs/vgg16.cnn ..." limits step 3; BATCHES (default 1,8,64); PER_LAYER="archs/x.cnn ..." adds
# --per-layer for those networks. Each step has its own time limit, so a slow step leaves the others' logs.
# On a machine where nothing can be installed, install cnnc first with
#   python3 -m pip install --no-deps --no-build-isolation -e .   (and lark from a carried wheel).
set -u
cd "$(dirname "$0")/.."
LOG="${1:-out/gpu}"
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
GEN="$(mktemp -d)"  # the modules cnnc bench compiles (not in LOG: only the logs are wanted)

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "$PY" - <<'EOF'
import sys
import numpy as np
import numba
from importlib.metadata import version
print(sys.version.split()[0], "numpy", np.__version__, "numba", numba.__version__,
      "numba-cuda", version("numba-cuda"))
from numba import cuda
print("cuda.is_available():", cuda.is_available())
@cuda.jit
def bump(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] += 1.0
a = cuda.to_device(np.arange(64, dtype=np.float32))
bump[1, 64](a)
print("smoke kernel:", "ok" if np.array_equal(a.copy_to_host(), np.arange(64) + 1.0) else "WRONG")
dev = cuda.get_current_device()
print("device:", getattr(dev, "name", "simulator"), getattr(dev, "compute_capability", ""))
EOF
} 2>&1 | tee "$LOG/env.log"

timeout "${TEST_LIMIT:-300}" "$PY" -m pytest tests/test_cuda_gpu.py -q -rs -p no:cacheprovider \
    ${PYTEST_ARGS:-} 2>&1 | tee "$LOG/tests.log"

for f in ${NETS:-archs/*.cnn}; do
    extra=""
    case " ${PER_LAYER:-} " in *" $f "*) extra="--per-layer" ;; esac
    echo "== $f"
    timeout 120 "$PY" -m cnnc bench "$f" --target cuda --batch "${BATCHES:-1,8,64}" --compare torch \
        --runs 20 -o "$GEN" $extra 2>&1
done | tee "$LOG/bench.log"
