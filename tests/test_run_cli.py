"""``cnnc run``: output shape, top classes, parameter and input files, and clear errors."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from numerics import TOL32

from cnnc import params as P
from cnnc.cli import main
from cnnc.commands.run import random_input
from cnnc.frontend import load
from cnnc.runtime.reference import run

NET = """network tiny
input 2x8x8
conv(4, 3, pad=1) relu
maxpool(2, round=ceil)
flatten
fc(7)
"""
MAP = """network maps
input 3x6x6
conv(5, 3) relu
"""


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def scores(out: str) -> dict[int, list[tuple[int, float]]]:
    """``{image: [(class, score), ...]}`` parsed from the printed ranking."""
    found: dict[int, list[tuple[int, float]]] = {}
    image = -1
    for line in out.splitlines():
        if m := re.match(r"image (\d+): top-(\d+)", line):
            image = int(m.group(1))
            found[image] = []
        elif m := re.match(r"\s+\d+\. class (\d+)\s+(\S+)", line):
            found[image].append((int(m.group(1)), float(m.group(2))))
    return found


def test_prints_shape_and_the_reference_top5(capsys, net):
    rc, out, err = cli(capsys, net, "--batch", 2, "--seed", 3)
    assert rc == 0, err
    assert "network tiny: input 2x2x8x8 (random normal, seed 3); parameters: He-normal init, seed 3" in out
    assert "output 2x7 (float32)" in out
    g = load(net)
    want = run(g, P.init(g, 3), random_input((2, 8, 8), 2, 3), np.float32)
    got = scores(out)
    assert sorted(got) == [0, 1]
    for i in range(2):
        assert [c for c, _ in got[i]] == list(np.argsort(-want[i], kind="stable")[:5])
        for c, s in got[i]:
            assert s == pytest.approx(float(want[i, c]), rel=1e-5, abs=1e-6)


def test_seed_changes_the_answer(capsys, net):
    outs = [cli(capsys, net, "--seed", s, "--top", 7)[1] for s in (0, 0, 1)]
    assert outs[0] == outs[1] != outs[2]
    assert len(scores(outs[0])[0]) == 7


def test_params_and_input_files_and_output_file(capsys, net, tmp_path):
    g = load(net)
    p = P.random(g, seed=5)
    P.save(tmp_path / "p.npz", p)
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, out, err = cli(capsys, net, "--params", tmp_path / "p.npz", "--input", tmp_path / "x.npy",
                       "-o", tmp_path / "y.out")
    assert rc == 0, err
    assert f"parameters: {tmp_path / 'p.npz'}" in out and f"wrote {tmp_path / 'y.out'}" in out
    y = np.load(tmp_path / "y.out")  # written under exactly the given name
    assert y.dtype == np.float32 and y.shape == (3, 7)
    np.testing.assert_array_equal(y, run(g, p, x, np.float32))
    rc, out, err = cli(capsys, net, "--params", tmp_path / "p.npz", "--input", tmp_path / "x.npy",
                       "--dtype", "float64", "-o", tmp_path / "y64.npy")
    y64 = np.load(tmp_path / "y64.npy")
    assert rc == 0 and y64.dtype == np.float64
    assert 0 < np.abs(y64 - y).max() / np.abs(y64).max() < 1e-5


def test_one_image_without_batch_axis(capsys, net, tmp_path):
    np.save(tmp_path / "img.npy", np.random.default_rng(1).standard_normal((2, 8, 8)))
    rc, out, err = cli(capsys, net, "--input", tmp_path / "img.npy")
    assert rc == 0, err
    assert "input 1x2x8x8" in out and "output 1x7" in out and "image 0: top-5" in out


def test_feature_map_output_prints_statistics(capsys, tmp_path):
    path = tmp_path / "maps.cnn"
    path.write_text(MAP)
    rc, out, err = cli(capsys, path, "--batch", 2)
    assert rc == 0, err
    assert "output 2x5x4x4" in out and "a feature map, not class scores" in out
    g = load(path)
    y = run(g, P.init(g, 0), random_input((3, 6, 6), 2, 0), np.float32)
    line = [s for s in out.splitlines() if s.startswith("image 1:")][0]
    lo, mean, hi = (float(v) for v in line.split(":")[1].split("/"))
    assert (lo, hi) == (pytest.approx(float(y[1].min()), abs=1e-6), pytest.approx(float(y[1].max()), rel=1e-5))
    assert mean == pytest.approx(float(y[1].mean()), rel=1e-5)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: np.save(d / "x.npy", np.ones((1, 3, 8, 8), np.float32)),
         "input has shape 1x3x8x8, the network takes 2x8x8 images: expected shape Nx2x8x8"),
        (lambda d: np.save(d / "x.npy", np.ones((8, 8), np.float32)), "input has shape 8x8"),
        (lambda d: np.save(d / "x.npy", np.ones((1, 2, 8, 8), np.int32)),
         "input has dtype int32, expected floating point"),
        (lambda d: np.save(d / "x.npy", np.full((1, 2, 8, 8), np.nan, np.float32)),
         "input has 128 non-finite values"),
        (lambda d: np.save(d / "x.npy", np.array([{}], dtype=object), allow_pickle=True),
         "holds an object array (pickled data); cnnc never unpickles"),
        (lambda d: (d / "x.npy").write_bytes(pickle.dumps([1.0, 2.0])),
         "x.npy: is a Python pickle, not an .npy array; cnnc never unpickles"),
        (lambda d: (d / "x.npy").write_text("1 2 3\n"), "x.npy: not an .npy array (no NumPy header)"),
        (lambda d: (d / "x.npy").write_bytes(b"\x93NUMPY\x01\x00garbage"), "x.npy: not an .npy array ("),
        (lambda d: np.savez(d / "x.npz", a=np.ones(3)) or (d / "x.npz").rename(d / "x.npy"),
         "is an .npz archive, expected a single"),
        (lambda d: None, "x.npy: no such input file"),
        (lambda d: (d / "x.npy").mkdir(), "x.npy: is a directory"),
    ],
    ids=["channels", "rank", "int", "nan", "object", "pickle", "text", "truncated", "npz", "missing", "dir"],
)
def test_bad_input_files(capsys, net, tmp_path, make, message):
    make(tmp_path)
    rc, out, err = cli(capsys, net, "--input", tmp_path / "x.npy")
    assert rc == 2
    assert message in err
    assert "Traceback" not in err


def test_batch_larger_than_the_input_file_and_batch_zero(capsys, net, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 2, 8, 8), np.float32))
    rc, out, err = cli(capsys, net, "--input", tmp_path / "x.npy", "--batch", 3)  # with --input: images per call
    assert rc == 0 and "output 2x7" in out and "(batch 2, reference backend)" in err
    rc, _, err = cli(capsys, net, "--batch", 0)
    assert rc == 2 and "--batch must be at least 1, got 0" in err


def test_bad_params_file(capsys, net, tmp_path):
    np.savez(tmp_path / "p.npz", **{"conv1.weight": np.ones((4, 2, 3, 3), np.float64)})
    rc, _, err = cli(capsys, net, "--params", tmp_path / "p.npz")
    assert rc == 2
    assert "conv1.weight has dtype float64, expected float32" in err
    assert "missing fc1.weight" in err


def test_missing_network_file(capsys, tmp_path):
    rc, _, err = cli(capsys, tmp_path / "nope.cnn")
    assert rc == 2 and "nope.cnn: no such file" in err


def test_help_describes_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "reference executor" in out and "--params" in out and "--input" in out and "-o" in out


def test_optimised_graph_gives_the_same_output(capsys, tmp_path):
    pytest.importorskip("cnnc.passes.cli")
    path = tmp_path / "inc.cnn"
    path.write_text("""network inc
input 8x6x6
concat {
    conv(4, 1) relu
    conv(3, 1) relu conv(5, 3, pad=1) relu
    maxpool(3, stride=1, pad=1) conv(2, 1) relu
}
batchnorm
gap
flatten
fc(6)
""")
    outs = {}
    for level in ("0", "1"):
        rc, out, err = cli(capsys, path, "-O", level, "--dtype", "float64", "--batch", 2, "-o",
                           tmp_path / f"y{level}.npy")
        assert rc == 0, err
        outs[level] = np.load(tmp_path / f"y{level}.npy")
    assert outs["0"].shape == (2, 6)
    assert np.abs(outs["1"] - outs["0"]).max() <= 1e-10 * np.abs(outs["0"]).max()


def test_cpu_backend_compiles_and_agrees_with_the_reference(capsys, net, tmp_path):
    outdir = tmp_path / "gen"
    rc, out, err = cli(capsys, net, "--backend", "cpu", "--outdir", outdir, "--batch", 2, "--seed", 5, "--top", 7)
    assert rc == 0, err
    assert (outdir / "tiny_cpu.py").is_file() and "compiled" in err
    g = load(net)
    exact = run(g, P.init(g, 5), random_input((2, 8, 8), 2, 5))  # float64
    got = scores(out)
    for i in range(2):
        assert [c for c, _ in got[i]] == list(np.argsort(-exact[i], kind="stable")[:7])
        for c, s in got[i]:
            # float32 against float64 (tests/numerics.py: TOL32), plus the 6 digits printed
            assert abs(s - exact[i, c]) <= TOL32 * np.abs(exact).max() + 5e-6 * abs(exact[i, c])


def test_compiled_backend_refuses_float64(capsys, net, tmp_path):
    rc, _, err = cli(capsys, net, "--backend", "cpu", "--outdir", tmp_path, "--dtype", "float64")
    assert rc == 2 and "--dtype float64 needs --backend reference" in err
