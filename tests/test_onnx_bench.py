"""``cnnc bench --compare torch,onnxruntime``: ONNX Runtime timed on the exported network with the same
weights, interleaved with cnnc and PyTorch; its columns and ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnc.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

LENET = str(Path(__file__).resolve().parents[1] / "archs" / "lenet5.cnn")


def test_bench_compares_with_torch_and_onnxruntime(tmp_path, capsys):
    rc = main(["bench", LENET, "-o", str(tmp_path), "--batch", "1,3", "--runs", "3", "--threads", "1",
               "--compare", "torch,onnxruntime"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = out.out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["batch", "ms/batch"])
    assert lines[head].split() == ["batch", "ms/batch", "ms/image", "GFLOP/s", "torch", "ms", "ratio",
                                   "ort", "ms", "ort", "ratio"]
    for i, n in enumerate((1, 3)):
        cells = lines[head + 1 + i].split()
        assert int(cells[0]) == n and len(cells) == 8
        ms, _, _, torch_ms, ratio, ort_ms, ort_ratio = map(float, cells[1:])
        assert ms > 0 and torch_ms > 0 and ort_ms > 0
        h = 0.0005  # printed to 3 decimals
        assert (ms - h) / (ort_ms + h) - 0.005 <= ort_ratio <= (ms + h) / (ort_ms - h) + 0.005
    assert "disagree" not in out.err
    # ONNX Runtime alone (the module and Numba's cache from above are reused)
    assert main(["bench", LENET, "-o", str(tmp_path), "--batch", "2", "--runs", "2", "--threads", "1",
                 "--compare", "onnxruntime"]) == 0
    out2 = capsys.readouterr().out
    assert "ort ratio" in out2 and "torch ms" not in out2
    with pytest.raises(SystemExit) as e:
        main(["bench", LENET, "--compare", "torch,tensorflow"])
    assert e.value.code == 2
    assert "expected a comma list of torch, onnxruntime" in capsys.readouterr().err
