#!/usr/bin/env bash
# cnnc bench for every network of archs/ at batch 1 and 8 against PyTorch, 2 threads (issue 4).
# Usage: benchmarks/run_all.sh [extra cnnc bench options]; prints one block per network.
# Quote ratios, not absolute times, and say how loaded the machine was (uptime is printed).
set -u
cd "$(dirname "$0")/.."
for f in archs/*.cnn; do
    echo "== $f ($(uptime | sed 's/.*load average/load average/'))"
    cnnc bench "$f" --batch 1,8 --compare torch --threads 2 --runs 10 "$@" 2>/dev/null
done
