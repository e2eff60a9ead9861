"""`cnnc inspect`: the table, the JSON contract, DOT, determinism and error exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnc.cli import main

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ROOT / "archs"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_totals_googlenet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", str(ARCHS / "googlenet.cnn"), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    # ARCHITECTURES.md, GoogLeNet totals
    assert doc["totals"]["params"] == 6_998_552
    assert doc["totals"]["macs"] == 1_582_671_872
    assert doc["network"] == "googlenet" and doc["input"] == [3, 224, 224] and doc["output"] == [1000]
    first = doc["layers"][0]
    assert set(first) >= {"name", "op", "attrs", "inputs", "shape", "kernel", "weights", "biases", "params", "macs",
                          "activations"}
    assert first["kernel"] == "direct" and i3a_kernel(doc) is None  # conv1: 3 input channels
    i3a = next(r for r in doc["layers"] if r["name"] == "i3a")
    assert i3a["op"] == "concat" and i3a["shape"] == [256, 28, 28] and len(i3a["inputs"]) == 4
    acts = sum(r["activations"] for r in doc["layers"]) + 3 * 224 * 224
    assert doc["totals"]["activations"] == acts


def i3a_kernel(doc: dict) -> str | None:
    return next(r for r in doc["layers"] if r["name"] == "i3a")["kernel"]  # a concat: no conv kernel


def test_table_vgg16(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", str(ARCHS / "vgg16.cnn"))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split() == ["layer", "op", "kernel", "output", "params", "MACs", "activations", "receptive",
                                "field"]
    row = next(line for line in lines if line.startswith("stage1/conv2 "))
    assert row.split()[-8:] == ["3x3", "winograd4", "64x224x224", "36.9k", "1.85G", "12.8", "MB", "5x5"]
    row = next(line for line in lines if line.startswith("stage1/conv1 "))  # 3 input channels: no Winograd
    assert row.split()[3] == "direct"
    row = next(line for line in lines if line.startswith("stage5/conv2 "))  # 14x14: F(2x2) wastes fewer tiles
    assert row.split()[3] == "winograd"
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "1000", "138M", "15.5G", "61.0", "MB"]
    assert "15,237,608 activation values" in out and "138,357,544 params" in out


def test_dot_labels_every_edge_and_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ARCHS / "inception_reduced.cnn")
    _, a, _ = run(capsys, "inspect", path, "--format", "dot")
    _, b, _ = run(capsys, "inspect", path, "--format", "dot")
    assert a == b
    assert a.startswith('digraph "inception_reduced" {')
    edges = [line for line in a.splitlines() if "->" in line]
    assert len(edges) == 17 and all("label=" in e for e in edges)
    assert '"concat1/b4/conv1" -> "concat1/b4/relu1" [label="64x28x28"];' in a


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "lenet.json"
    code, out, _ = run(capsys, "inspect", str(ARCHS / "lenet5.cnn"), "-f", "json", "-o", str(target))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["totals"]["params"] == 61_706


def test_source_error_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x7x7\nconv(8, 3, stride=3, round=strict)\n")
    code, out, err = run(capsys, "inspect", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}:2:1: error: stride 3 does not fit" in err and "(7 - 3)/3 + 1 = 2.33" in err
    assert "Traceback" not in err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "no/such.cnn")
    assert code == 2 and "no/such.cnn: no such file" in err


def test_console_script_help() -> None:
    out = subprocess.run([sys.executable, "-m", "cnnc", "inspect", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--format" in out and "table" in out


def test_memory_plan_reported_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", str(ARCHS / "vgg16.cnn"), "-O1")
    assert code == 0
    # VGG16 activations with the input: 15,237,608 values (ARCHITECTURES.md); two ping-pong buffers of the
    # largest map (64x224x224 = 3,211,264) suffice once every tensor can reuse memory.
    assert "memory plan: peak activation memory 15,237,608 -> 6,422,528 values per image" in out
    code, out, _ = run(capsys, "inspect", str(ARCHS / "vgg16.cnn"), "-O1", "-f", "json")
    assert json.loads(out)["memory"] == {"before": 15_237_608, "after": 6_422_528}
