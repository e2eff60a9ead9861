"""The README's Dask recipe ("Many images, many machines") runs as written (issue 13, item 6).

It starts a LocalCluster of two worker processes (memory-limited, torn down by the recipe),
sends a pickled LeNet-5 Model to them and maps it over a chunked dask.array; the answers
must be the same bits as one process computing the same chunks on the same thread count.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def recipe() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Many images, many machines", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python recipe"
    return blocks[0]


@pytest.mark.slow
def test_readme_dask_recipe_matches_one_process(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    script = tmp_path / "recipe.py"
    script.write_text(recipe())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "(1000, 10) identical to one process: True" in done.stdout, done.stdout + done.stderr[-4000:]
