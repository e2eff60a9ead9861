"""``cnnc run FILE --input images.npy --batch N -o out.npy``: streaming many images (issue 13, item 5).

The input is memory-mapped and run N images at a time; the output appears only once every
image is done (an error or Ctrl-C leaves no file, not even a temporary one); the throughput is
printed; a progress bar shows on a terminal only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numerics import TOL32, rel_err

from cnnc import params as P
from cnnc.cli import main
from cnnc.commands import run as run_cmd
from cnnc.frontend import load
from cnnc.runtime.reference import run

NET = """network tiny
input 2x8x8
conv(4, 3, pad=1) relu
maxpool(2, round=ceil)
flatten
fc(7)
"""


@pytest.fixture
def net(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    return path


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(7).standard_normal((10, 2, 8, 8)).astype(np.float32)
    np.save(tmp_path / "images.npy", x)
    return tmp_path / "images.npy", x


def cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    rc = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_input_is_memory_mapped(images: tuple[Path, np.ndarray]) -> None:
    x = run_cmd.read_input(str(images[0]), (2, 8, 8))
    assert isinstance(x, np.memmap) and x.shape == (10, 2, 8, 8)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_streams_in_batches_to_a_file(capsys, net, images, tmp_path: Path, backend: str) -> None:
    path, x = images
    g = load(net)
    rc, out, err = cli(capsys, net, "--input", path, "--batch", 3, "-o", tmp_path / "out.npy", "--backend", backend,
                       "--outdir", tmp_path / "gen")
    assert rc == 0, err
    y = np.load(tmp_path / "out.npy")
    assert y.shape == (10, 7) and y.dtype == np.float32
    assert rel_err(y, run(g, P.init(g, 0), x)) <= TOL32  # float32 in batches of 3 against float64
    assert "input 10x2x8x8" in out and f"wrote {tmp_path / 'out.npy'}" in out
    assert "10 images in " in err and "images/s (batch 3, " in err
    assert "|" not in err  # stderr is not a terminal here: no progress bar
    assert leftovers(tmp_path) == []


def test_progress_bar_on_a_terminal(capsys, net, images, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_cmd.sys.stderr, "isatty", lambda: True)
    rc, _, err = cli(capsys, net, "--input", images[0], "--batch", 2, "-o", tmp_path / "out.npy")
    assert rc == 0 and "10/10" in err and "img" in err  # tqdm's bar


def test_an_error_midway_leaves_no_file(capsys, net, images, tmp_path: Path) -> None:
    path, x = images
    x[8, 1, 2, 3] = np.nan  # in the last batch: the first batches are written before it is found
    np.save(path, x)
    out = tmp_path / "out.npy"
    rc, _, err = cli(capsys, net, "--input", path, "--batch", 4, "-o", out)
    assert rc == 2 and "input has 1 non-finite value (NaN or Inf) in images 8-9" in err
    assert not out.exists() and leftovers(tmp_path) == []
    out.write_bytes(b"the previous answer")
    rc, _, _ = cli(capsys, net, "--input", path, "--batch", 4, "-o", out)
    assert rc == 2 and out.read_bytes() == b"the previous answer"  # replaced only when complete


def test_ctrl_c_midway_leaves_no_file(capsys, net, images, tmp_path: Path, monkeypatch) -> None:
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run(*args, **kwargs)

    monkeypatch.setattr(run_cmd, "reference_run", interrupted)
    out = tmp_path / "out.npy"
    rc, _, err = cli(capsys, net, "--input", images[0], "--batch", 3, "-o", out)
    assert rc == 130 and "interrupted" in err and len(calls) == 2
    assert not out.exists() and leftovers(tmp_path) == []
