#!/usr/bin/env bash
# cnnc bench for every network of archs/ at batch 1 and 8 against PyTorch and ONNX Runtime, 2 threads
# (issues 4 and 11). Usage: benchmarks/run_all.sh [extra cnnc bench options]; prints one block per network,
# then a table of the ratios cnnc/PyTorch and cnnc/ONNX Runtime (below 1: cnnc is faster).
# Quote ratios, not absolute times, and say how loaded the machine was (uptime is printed).
# NETS="archs/vgg16.cnn archs/resnet50.cnn" benchmarks/run_all.sh limits it to those networks.
set -u
cd "$(dirname "$0")/.."
table="| network | batch | cnnc ms | PyTorch ms | ORT ms | cnnc/PyTorch | cnnc/ORT | load average |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for f in ${NETS:-archs/*.cnn}; do
    load="$(uptime | sed 's/.*load average: //')"
    echo "== $f (load average: $load)"
    out="$(cnnc bench "$f" --batch 1,8 --compare torch,onnxruntime --threads 2 --runs 10 "$@" 2>/dev/null)"
    echo "$out"
    # rows: batch ms/batch ms/image GFLOP/s torch-ms ratio ort-ms ort-ratio
    rows="$(echo "$out" | awk -v net="$(basename "$f" .cnn)" -v load="$load" \
        'NF == 8 && $1 ~ /^[0-9]+$/ { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", net, $1, $2, $5, $7, $6, $8, load }')"
    [ -n "$rows" ] && table="$table
$rows"
done
echo
echo "$table"
