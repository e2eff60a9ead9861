"""generated/ holds exactly what the compiler produces today, and imports from the repo root."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from cnnc.codegen import refresh

ROOT = Path(__file__).resolve().parents[1]


def test_generated_modules_are_fresh() -> None:
    stale = refresh.stale()
    assert not stale, (
        f"generated/ is stale ({', '.join(stale)}): run `{refresh.REFRESH_COMMAND}` and commit the result"
    )
    names = {p.stem.removesuffix("_cpu") for p in (ROOT / "generated").glob("*_cpu.py")}
    assert names == {p.stem for p in refresh.networks()}


def test_generation_twice_gives_identical_bytes() -> None:
    assert refresh.expected() == refresh.expected()


def test_generated_is_an_importable_package() -> None:
    mod = importlib.import_module("generated.googlenet_cpu")
    assert mod.INPUT_SHAPE == (3, 224, 224) and mod.OUTPUT_SHAPE == (1000,)
    # as a user would, from the repository root, in a fresh interpreter (no compilation needed)
    code = "import generated.lenet5_cpu as m; print(m.NETWORK, len(m.PARAM_SHAPES))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["lenet5", "10"]
