"""The reference executor against PyTorch (``torch.nn.functional``), and state_dict import.

Every network in ``archs/`` runs through both with random weights (non-zero biases) and a
random batch of 2: float64 agrees to 1e-10 relative error at every node, float32 to 1e-4.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numerics import TOL32  # noqa: E402

from cnnc import params as P  # noqa: E402
from cnnc.errors import CnncError, ParamsError  # noqa: E402
from cnnc.frontend import load  # noqa: E402
from cnnc.graph import GraphBuilder, add_node, param_specs  # noqa: E402
from cnnc.interop.torch import require_torch, run_torch, save_state_dict, state_dict_to_params  # noqa: E402
from cnnc.ops import Op  # noqa: E402
from cnnc.runtime.reference import run, run_all  # noqa: E402

ARCHS = Path(__file__).resolve().parent.parent / "archs"
REQUIRED = {"lenet5", "alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "nin", "inception_naive",
            "inception_reduced", "conv5x5", "conv5x5_bottleneck"}
BIG = {"vgg16", "vgg19", "resnet50"}  # ~10 s each on 2 cores: compare the output only (memory) and mark slow


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Max absolute difference relative to the largest magnitude of ``b``."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def batch(g, seed: int = 7, n: int = 2) -> np.ndarray:
    shape = g.nodes[g.graph["input"]]["shape"]
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape))


def arch_params():
    names = sorted(p.stem for p in ARCHS.glob("*.cnn"))
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in names]


def test_every_required_network_is_shipped():
    assert REQUIRED <= {p.stem for p in ARCHS.glob("*.cnn")}


def test_the_networks_exercise_ceil_pools_groups_lrn_and_concat():
    kinds = set()
    for name in ("googlenet", "nin", "zfnet", "alexnet"):
        g = load(ARCHS / f"{name}.cnn")
        for n in g.nodes:
            op = g.nodes[n]["op"]
            if op.kind in ("maxpool", "avgpool") and op["round"] == "ceil":
                kinds.add(f"ceil:{name}")
            if op.kind == "conv" and op["groups"] > 1:
                kinds.add("groups")
            if op.kind in ("lrn", "concat", "gap"):
                kinds.add(op.kind)
    assert {"ceil:googlenet", "ceil:nin", "ceil:zfnet", "groups", "lrn", "concat"} <= kinds
    g = load(ARCHS / "googlenet.cnn")  # nine inception concats, each compared node by node below
    assert sum(g.nodes[n]["op"].kind == "concat" for n in g.nodes) == 9


@pytest.mark.parametrize("name", arch_params())
def test_reference_matches_pytorch_float64(name):
    g = load(ARCHS / f"{name}.cnn")
    p, x = P.random(g, seed=1), batch(g)
    assert any(k.endswith(".bias") and p[k].all() for k in p)  # non-zero biases take part
    if name in BIG:
        ref, tor = run(g, p, x), run_torch(g, p, x)
        assert ref.dtype == np.float64 and rel(ref, tor) < 1e-10
        return
    # every node, not just the output: a saturated softmax could hide a difference
    ref, tor = run_all(g, p, x), run_torch(g, p, x, all_nodes=True)
    assert set(ref) == set(tor) == set(g.nodes)
    for n in g.nodes:
        assert ref[n].dtype == tor[n].dtype == np.float64
        assert ref[n].shape == (2,) + tuple(g.nodes[n]["shape"])
        assert rel(ref[n], tor[n]) < 1e-10, n
    out = ref[g.graph["output"]]
    assert not np.allclose(out[0], out[1])  # two images, two answers


@pytest.mark.parametrize("name", arch_params())
def test_reference_matches_pytorch_float32(name):
    g = load(ARCHS / f"{name}.cnn")
    p, x = P.random(g, seed=2), batch(g, seed=3)
    ref, tor = run(g, p, x, np.float32), run_torch(g, p, x, np.float32)
    assert ref.dtype == tor.dtype == np.float32
    exact = run(g, p, x)  # two float32 answers are each held to float64 (tests/numerics.py: why TOL32)
    assert rel(ref, exact) <= TOL32 and rel(tor, exact) <= TOL32


# --- small graphs: what archs/ does not exercise ------------------------------------------

def small_cases():
    def pools():
        b = GraphBuilder("pools", (3, 9, 10))  # the output is one node; run_all checks them all
        b.layer("avgpool", b.input, kernel=3, stride=2, pad=1, round="ceil")
        b.layer("avgpool", b.input, kernel=3, stride=2, pad=1, round="ceil", count_pad=False)
        b.layer("maxpool", b.input, kernel=2, stride=2, pad=1, round="ceil")
        b.layer("conv", b.input, filters=2, kernel=2, stride=3, pad=1, round="ceil")
        return b.finish(b.layer("avgpool", b.input, kernel=4, stride=3, pad=2))

    def mixed():
        b = GraphBuilder("mixed", (4, 11, 11))
        x = b.layer("conv", b.input, filters=6, kernel=3, stride=2, round="ceil", groups=2)
        x = b.layer("batchnorm", x, eps=1e-3)
        y = b.layer("lrn", x, size=4, alpha=0.5, beta=0.6, k=1.5)
        x = b.layer("add", [x, y, x])
        x = b.layer("gap", x)
        x = b.layer("flatten", x)
        x = b.layer("batchnorm", x)
        x = b.layer("fc", x, out=5)
        return b.finish(b.layer("softmax", x))

    def fused():
        b = GraphBuilder("fused", (4, 5, 5))
        b.layer("conv", b.input, name="a", filters=3, kernel=3, pad=1)
        b.layer("conv", b.input, name="b", filters=2, kernel=3, pad=1, bias=False)
        b.layer("batchnorm", "b", name="bn", eps=1e-3)
        g = b.finish("input")
        specs = param_specs(g)
        parts = ({"node": "a", "out": 3, "bias": True, "bn": None, "eps": 1e-5},
                 {"node": "b", "out": 2, "bias": False, "bn": "bn", "eps": 1e-3})
        f = GraphBuilder("fused", (4, 5, 5)).g
        add_node(f, "ab", Op("conv", {**g.nodes["a"]["op"].attrs, "filters": 5, "parts": parts, "act": "relu"}),
                 ["input"])
        add_node(f, "sa", Op("slice", {"start": 0, "stop": 3}), ["ab"])
        add_node(f, "sb", Op("slice", {"start": 3, "stop": 5}), ["ab"])
        add_node(f, "cat", Op("concat", {"inplace": True}), ["sb", "sa"])
        f.graph["output"] = "cat"
        f.graph["params"] = specs
        return f

    return [pools(), mixed(), fused()]


@pytest.mark.parametrize("g", small_cases(), ids=lambda g: g.graph["name"])
def test_small_graphs_match_pytorch(g):
    p, x = P.random(g, seed=9), batch(g, seed=10)
    ref, tor = run_all(g, p, x), run_torch(g, p, x, all_nodes=True)
    for n in g.nodes:
        assert rel(ref[n], tor[n]) < 1e-12, n
    exact = run(g, p, x)  # float32 answers against float64 (tests/numerics.py: why TOL32)
    assert rel(run(g, p, x, np.float32), exact) <= TOL32 and rel(run_torch(g, p, x, np.float32), exact) <= TOL32


# --- state_dict import ---------------------------------------------------------------------

def lenet_pair():
    """A small cnnc graph and the same network as a torch.nn.Sequential."""
    b = GraphBuilder("lenetish", (1, 12, 12))
    x = b.layer("conv", b.input, name="c1", filters=4, kernel=3)
    x = b.layer("batchnorm", x, name="bn1")
    x = b.layer("relu", x)
    x = b.layer("maxpool", x, kernel=2, round="ceil")
    x = b.layer("flatten", x)
    x = b.layer("fc", x, name="f2", out=6)
    g = b.finish(x)
    nn = torch.nn
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                      nn.Flatten(), nn.Linear(4 * 5 * 5, 6)).double()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-1, 1)
    m.eval()
    mapping = {"c1.weight": "0.weight", "c1.bias": "0.bias", "f2.weight": "5.weight", "f2.bias": "5.bias"}
    mapping.update({f"bn1.{s}": f"1.{s}" for s in ("weight", "bias", "running_mean", "running_var")})
    return g, m, mapping


def test_state_dict_to_params_runs_like_the_torch_module(tmp_path):
    g, m, mapping = lenet_pair()
    sd = m.state_dict()
    assert "1.num_batches_tracked" in sd  # ignored, not an error
    p = state_dict_to_params(sd, g, mapping)
    assert list(p) == [n for n, _ in param_specs(g)]
    assert all(a.dtype == np.float32 for a in p.values())
    np.testing.assert_array_equal(p["f2.weight"], sd["5.weight"].numpy().astype(np.float32))
    x = batch(g, n=3)
    with torch.no_grad():
        want = m(torch.from_numpy(x).double()).numpy()
    m32 = m.float()
    with torch.no_grad():
        want32 = m32(torch.from_numpy(x).float()).numpy()
    # the float32-rounded weights in float64 vs the float32-rounded module
    assert rel(run(g, p, x), want32.astype(np.float64)) < 1e-5
    assert rel(run(g, p, x), want) < 1e-5
    path = save_state_dict(tmp_path / "m.npz", sd, g, mapping=lambda n: mapping[n])
    q = P.load(path, g)
    assert all(q[k].tobytes() == p[k].tobytes() for k in p)


def test_state_dict_problems_are_listed_together():
    g, m, mapping = lenet_pair()
    sd = dict(m.state_dict())
    del sd["0.bias"]
    sd["5.weight"] = sd["5.weight"][:, :10]
    sd["1.running_var"] = sd["1.running_var"].clone()
    sd["1.running_var"][0] = float("nan")
    sd["extra.weight"] = torch.ones(2)
    with pytest.raises(ParamsError) as e:
        state_dict_to_params(sd, g, mapping)
    msg = e.value.message
    assert "the state_dict does not fit 'lenetish' (4 problems)" in msg
    assert "missing c1.bias: the state_dict has no entry '0.bias' (expected shape (4,))" in msg
    assert "unused state_dict entry 'extra.weight'" in msg
    assert "f2.weight has shape (6, 10), expected (6, 100)" in msg
    assert "bn1.running_var has 1 non-finite value" in msg
    del sd["extra.weight"]
    with pytest.raises(ParamsError, match=r"\(3 problems\)"):
        state_dict_to_params(sd, g, mapping)


def test_state_dict_extra_entries_allowed_when_not_strict_and_identity_mapping():
    g, m, mapping = lenet_pair()
    sd = {cn: t for cn, tn in mapping.items() for t in [m.state_dict()[tn]]}
    sd["head.weight"] = torch.ones(3)
    with pytest.raises(ParamsError, match="unused state_dict entry 'head.weight'"):
        state_dict_to_params(sd, g)
    p = state_dict_to_params(sd, g, strict=False)
    assert set(p) == set(mapping)


def test_state_dict_integer_tensor_is_refused():
    g, m, mapping = lenet_pair()
    sd = dict(m.state_dict())
    sd["0.bias"] = torch.arange(4)
    with pytest.raises(ParamsError, match="c1.bias \\(torch '0.bias'\\) has dtype int64, expected floating point"):
        state_dict_to_params(sd, g, mapping)


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(CnncError, match=r"pip install torch==2\.13\.0"):
        require_torch()


def test_state_dict_in_half_precision_and_plain_arrays():
    g, m, mapping = lenet_pair()
    sd = {k: v.to(torch.bfloat16) for k, v in m.state_dict().items()}
    p = state_dict_to_params(sd, g, mapping)
    np.testing.assert_array_equal(p["c1.weight"], sd["0.weight"].float().numpy())
    arrays = {cn: m.state_dict()[tn].numpy() for cn, tn in mapping.items()}  # NumPy works too
    q = state_dict_to_params(arrays, g)
    np.testing.assert_array_equal(q["f2.bias"], arrays["f2.bias"].astype(np.float32))
