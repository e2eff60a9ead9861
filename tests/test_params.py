"""Parameters: initialisation, validation and ``.npz`` files (every bad-file case)."""

from __future__ import annotations

import pickle
import zipfile
from math import sqrt

import numpy as np
import pytest

from cnnc import params as P
from cnnc.errors import ParamsError
from cnnc.graph import GraphBuilder


@pytest.fixture
def g():
    b = GraphBuilder("tiny", (3, 8, 8))
    x = b.layer("conv", b.input, name="i3a/b2/conv1", filters=64, kernel=3, pad=1)
    x = b.layer("batchnorm", x, name="bn")
    x = b.layer("conv", x, name="c2", filters=32, kernel=1, bias=False)
    x = b.layer("fc", x, name="fc", out=10)
    return b.finish(x)


NAMES = ["i3a/b2/conv1.weight", "i3a/b2/conv1.bias", "bn.weight", "bn.bias", "bn.running_mean",
         "bn.running_var", "c2.weight", "fc.weight", "fc.bias"]


def test_init_names_order_shapes_and_values(g):
    p = P.init(g, seed=0)
    assert list(p) == NAMES
    assert p["i3a/b2/conv1.weight"].shape == (64, 3, 3, 3)
    assert p["fc.weight"].shape == (10, 32 * 8 * 8)
    assert all(a.dtype == np.float32 for a in p.values())
    for name in ("i3a/b2/conv1.bias", "bn.bias", "bn.running_mean", "fc.bias"):
        assert not p[name].any()
    assert (p["bn.weight"] == 1).all() and (p["bn.running_var"] == 1).all()
    # He-normal: std sqrt(2 / fan_in); fan_in = 3*3*3 for conv1, 64 for c2, 2048 for fc
    for name, fan_in in (("i3a/b2/conv1.weight", 27), ("c2.weight", 64), ("fc.weight", 2048)):
        std = float(p[name].std())
        assert std == pytest.approx(sqrt(2 / fan_in), rel=0.1), name
        assert abs(float(p[name].mean())) < 0.2 * sqrt(2 / fan_in)


def test_init_is_deterministic_per_seed(g):
    a, b, c = P.init(g, 3), P.init(g, 3), P.init(g, 4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["fc.weight"], c["fc.weight"])


def test_init_follows_recorded_params_of_an_optimised_graph(g):
    g.graph["params"] = [("x.weight", (2, 3)), ("x.bias", (2,))]
    p = P.init(g)
    assert list(p) == ["x.weight", "x.bias"] and p["x.weight"].shape == (2, 3)


def test_random_has_no_zeros_or_ones(g):
    p = P.random(g, seed=1)
    assert list(p) == NAMES
    for name, a in p.items():
        assert a.dtype == np.float32
        assert (a != 0).all(), name
    assert (p["bn.running_var"] > 0).all()
    assert not np.array_equal(p["bn.weight"], np.ones(64, np.float32))
    assert P.validate(p, g) is not p  # validated copy in declaration order
    assert all(np.array_equal(P.random(g, 1)[k], p[k]) for k in p)


def test_npz_round_trip_is_exact(g, tmp_path):
    p = P.random(g, seed=2)
    path = P.save(tmp_path / "w.params", p)  # no suffix appended
    assert path == tmp_path / "w.params" and path.exists()
    q = P.load(path, g)
    assert list(q) == NAMES
    for k in p:
        assert q[k].dtype == p[k].dtype and q[k].shape == p[k].shape
        assert q[k].tobytes() == p[k].tobytes()


def test_load_lists_every_problem_at_once(g, tmp_path):
    p = P.init(g)
    del p["bn.bias"]
    p["fc.weight"] = p["fc.weight"][:, :100]
    p["c2.weight"] = p["c2.weight"].astype(np.float64)
    p["i3a/b2/conv1.bias"] = np.full(64, np.nan, np.float32)
    p["bn.weight"] = np.array([np.inf] + [1.0] * 63, np.float32)
    p["stray.weight"] = np.ones(3, np.float32)
    path = tmp_path / "bad.npz"
    P.save(path, p)
    with pytest.raises(ParamsError) as e:
        P.load(path, g)
    msg = e.value.message
    assert f"parameters in {path} do not match 'tiny' (6 problems)" in msg
    assert "missing bn.bias (expected shape (64,), float32)" in msg
    assert "fc.weight has shape (10, 100), expected (10, 2048)" in msg
    assert "c2.weight has dtype float64, expected float32" in msg
    assert "i3a/b2/conv1.bias has 64 non-finite values (NaN or Inf)" in msg
    assert "bn.weight has 1 non-finite value (NaN or Inf)" in msg
    assert "unexpected stray.weight (the network has no such parameter)" in msg


def test_validate_rejects_non_arrays(g):
    p = P.init(g)
    p["fc.bias"] = [0.0] * 10
    with pytest.raises(ParamsError, match=r"1 problem\):\n  - fc.bias is a list, not a NumPy array"):
        P.validate(p, g)


def test_missing_file_and_directory(g, tmp_path):
    with pytest.raises(ParamsError, match="nope.npz: no such parameter file"):
        P.load(tmp_path / "nope.npz", g)
    with pytest.raises(ParamsError, match="is a directory, expected a parameter file"):
        P.load(tmp_path, g)


def test_a_pickle_is_refused_without_unpickling(g, tmp_path):
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(P.init(g)))
    with pytest.raises(ParamsError, match="is a Python pickle .* cnnc never unpickles"):
        P.load(path, g)


def test_a_torch_save_zip_is_refused(g, tmp_path):
    path = tmp_path / "w.pt"
    with zipfile.ZipFile(path, "w") as z:  # the layout torch.save writes
        z.writestr("w/data.pkl", pickle.dumps({"a": 1}))
        z.writestr("w/version", "3\n")
    with pytest.raises(ParamsError, match=r"is a torch.save file \(a zipped pickle\)"):
        P.load(path, g)


def test_a_zip_with_other_members_is_refused(g, tmp_path):
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ParamsError, match=r"zip archive but not an .npz: it holds non-array members \(readme.txt\)"):
        P.load(path, g)


def test_object_arrays_inside_an_npz_are_refused(g, tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"fc.bias": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(ParamsError, match="fc.bias is an object array \\(pickled\\), which cnnc never loads"):
        P.load(path, g)


def test_a_single_npy_is_refused(g, tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3, np.float32))
    with pytest.raises(ParamsError, match="is a single .npy array, not an .npz archive"):
        P.load(path, g)


def test_text_and_truncated_files_are_refused(g, tmp_path):
    text = tmp_path / "w.txt"
    text.write_text("conv1.weight = 1\n")
    with pytest.raises(ParamsError, match="is not an .npz archive \\(no zip signature\\)"):
        P.load(text, g)
    good = tmp_path / "good.npz"
    P.save(good, P.init(g))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ParamsError, match="is not a readable .npz archive"):
        P.load(cut, g)


def test_empty_npz_reports_every_parameter_missing(g, tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path)
    with pytest.raises(ParamsError, match=r"\(9 problems\)") as e:
        P.load(path, g)
    assert all(f"missing {n} " in e.value.message for n in NAMES)


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(ParamsError, match="cannot save x: a numeric NumPy array is required"):
        P.save(tmp_path / "x.npz", {"x": np.array([None], dtype=object)})
