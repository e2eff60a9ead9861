"""Real data end to end (examples/digits): a CNN trained in PyTorch on scikit-learn's handwritten
digits, exported to ONNX, imported and compiled by cnnc; the generated module's labels on the 450
held-out images equal PyTorch's on at least 99.5% of them (float32 both sides: only a near-tie between
two classes could flip a label)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.py"


@pytest.mark.slow  # ~25 s: training (a few seconds) and the Numba compilation of the generated module
def test_digits_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    res = mod.main(str(tmp_path), quiet=True)
    print(f"digits: PyTorch {res.torch_accuracy:.2%}, cnnc {res.cnnc_accuracy:.2%}, "
          f"labels agree on {res.agreement:.2%} of {res.test_images}")
    assert res.test_images == 450
    assert res.agreement >= 0.995
    assert res.cnnc_accuracy > 0.95
    assert "conv(16, 3, pad=1)" in res.cnn_text
