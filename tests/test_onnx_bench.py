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


def test_the_onnxruntime_peer_runs_as_configured_by_default(tmp_path):
    """The peer is ONNX Runtime as a user gets it: all graph optimisations, --threads intra-op threads, and its
    threads spinning between the parts of a run (its default; turned off, MobileNet at batch 1 took 1.8x as long).
    The pause before each timed call keeps the spinning off the next engine (tests/test_bench_cli.py)."""
    import onnxruntime as ort

    from cnnc.codegen import write
    from cnnc.codegen.loader import import_path
    from cnnc.frontend import load
    from cnnc.interop.onnx.peer import OrtNet

    g = load(LENET)
    net = OrtNet(g, import_path(write(g, "cpu", tmp_path)).init_params(0), 2)
    opts = net.session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
