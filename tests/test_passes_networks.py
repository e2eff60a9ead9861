"""Differential and structural tests of the passes on every network in archs/.

Every value-preserving pass alone, and the -O1 pipeline, must give the reference executor's
output to 1e-5 relative error in float64, with the verifier passing after every pass.
Expected counts are derived from ../shared/ARCHITECTURES.md (cited beside each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnc.frontend import load
from cnnc.params import random as random_params
from cnnc.passes import manager
from cnnc.passes.rewrite import build, nodes_of
from cnnc.passes.verify import verify
from cnnc.runtime.reference import run

ARCHS = Path(__file__).resolve().parent.parent / "archs"
NETS = sorted(p.stem for p in ARCHS.glob("*.cnn"))
SLOW = {"vgg16", "vgg19"}
PRESERVING = [p for p in manager.ORDER if manager.get(p).PRESERVES_VALUES]
TOL = 1e-5


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def logits(g):
    """The network up to its softmax (random weights make softmax outputs nearly uniform,
    which would hide a wrong value), as a source-level graph."""
    out = g.graph["output"]
    if g.nodes[out]["op"].kind != "softmax":
        return g
    return build(g, [nd for nd in nodes_of(g) if nd.name != out], output=g.nodes[out]["inputs"][0])


def test_all_networks_found() -> None:
    assert {"googlenet", "vgg16", "nin", "inception_naive", "lenet5"} <= set(NETS)


def same_computation(a, b) -> bool:
    """Same nodes, ops and inputs in the same order, same output (annotations such as the
    memory plan, which the reference executor does not read, aside)."""
    def key(g):
        return [(n, g.nodes[n]["op"], g.nodes[n]["inputs"]) for n in g.nodes], g.graph["output"]

    return key(a) == key(b)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NETS])
def test_passes_preserve_values(name: str) -> None:
    g = logits(load(ARCHS / f"{name}.cnn"))
    params = random_params(g, seed=1)
    batch = 1 if name in SLOW else 2
    x = np.random.default_rng(2).standard_normal((batch,) + g.nodes["input"]["shape"])
    want = run(g, params, x)
    assert np.max(np.abs(want)) > 0
    for p in PRESERVING:
        h = manager.run_pipeline(g, level=0, passes=[p], verify=True, log=None)
        assert h.graph["passes"] == [p]
        if same_computation(g, h):  # nothing for this pass to do here: the values cannot differ
            continue
        got = run(h, params, x)
        assert rel_err(got, want) <= TOL, p
    h = manager.run_pipeline(g, level=1, verify=True, log=None)
    assert h.graph["passes"] == PRESERVING
    assert h.graph["params"] == g.graph.get("params", manager.param_specs(g))
    assert rel_err(run(h, params, x), want) <= TOL


def _count(g, kind: str, pred=lambda op: True) -> int:
    return sum(1 for n in g.nodes if g.nodes[n]["op"].kind == kind and pred(g.nodes[n]["op"]))


def test_googlenet_structure_at_O1() -> None:
    g = load(ARCHS / "googlenet.cnn")
    # ARCHITECTURES.md GoogLeNet: 3 stem convs + 9 inception modules x 6 convs, every conv with a ReLU
    assert _count(g, "conv") == 57 and _count(g, "relu") == 57 and _count(g, "concat") == 9
    h = manager.run_pipeline(g, level=1, verify=True, log=None)
    fusions = h.graph["reports"]["hfuse"]["fusions"]
    assert len(fusions) == 9  # one per inception module: the 3x3- and 5x5-reduce 1x1 convs
    assert all(len(f["convs"]) == 2 for f in fusions)
    assert _count(h, "conv", lambda op: len(op.get("parts") or ()) == 2) == 9
    assert _count(h, "slice") == 18
    assert _count(h, "conv") == 57 - 18 + 9
    # every conv+ReLU pair fused; no ReLU, no dropout left
    assert _count(h, "relu") == 0 and _count(h, "dropout") == 0
    assert _count(h, "conv", lambda op: op.get("act") == "relu") == _count(h, "conv")
    # no concat copies: every concat is written in place by its branches
    assert _count(h, "concat", lambda op: op.get("inplace")) == 9
    assert _count(h, "concat", lambda op: not op.get("inplace")) == 0
    mem = h.graph["memory"]
    assert mem["after"] < mem["before"] / 2
    assert sum(h.graph["buffers"].values()) == mem["after"]


def test_googlenet_hfuse_can_take_all_three_1x1_convs() -> None:
    g = load(ARCHS / "googlenet.cnn")
    h = manager.run_pipeline(g, level=1, passes=["hfuse:include_concat_inputs=true"], verify=True, log=None)
    fusions = h.graph["reports"]["hfuse"]["fusions"]
    assert len(fusions) == 9 and all(len(f["convs"]) == 3 for f in fusions)
    # the 1x1 branch is now a slice of the fused conv: its concat copies again
    assert _count(h, "concat", lambda op: not op.get("inplace")) == 9


def test_vgg16_memory_plan() -> None:
    g = load(ARCHS / "vgg16.cnn")
    h = manager.run_pipeline(g, level=1, verify=True, log=None)
    # ARCHITECTURES.md VGG: the per-layer activation memory sums to 15,237,608 values with the input
    assert h.graph["memory"]["before"] == 15_237_608
    # a chain needs two buffers as large as its largest activation (VGG: 224x224x64 = 3,211,264)
    assert h.graph["memory"]["after"] == 2 * 3_211_264
    assert len(h.graph["buffers"]) == 2
    verify(h)


def test_bn_fold_and_dropout_on_nets_that_have_them() -> None:
    counts = {}
    for name in NETS:
        g = load(ARCHS / f"{name}.cnn")
        h = manager.run_pipeline(g, level=1, log=None)
        counts[name] = (_count(g, "dropout"), _count(h, "dropout"), _count(h, "batchnorm"))
    assert all(after == 0 for _, after, _ in counts.values())
    assert counts["alexnet"][0] == 2  # ARCHITECTURES.md AlexNet: dropout before FC6 and FC7


def test_resnet18_relu_after_add_is_fused_at_O1() -> None:
    g = load(ARCHS / "resnet18.cnn")
    # archs/resnet18.cnn: 8 basic/down blocks, each an add followed by a ReLU
    assert _count(g, "add") == 8
    h = manager.run_pipeline(g, level=0, passes=["bn_fold", "fuse_relu"], verify=True, log=None)
    assert _count(h, "relu") == 0
    assert _count(h, "add", lambda op: op.get("act") == "relu") == 8


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 8), ("resnet50", 16)])
def test_resnet_residual_adds_fuse_into_convs_at_O1(name: str, blocks: int) -> None:
    # archs/resnet18.cnn: 8 basic/down blocks; archs/resnet50.cnn: 3 + 4 + 6 + 3 bottleneck blocks
    g = load(ARCHS / f"{name}.cnn")
    assert _count(g, "add") == blocks
    h = manager.run_pipeline(g, level=1, verify=True, log=None)
    assert _count(h, "add") == 0 and _count(h, "relu") == 0
    fused = [n for n in h.nodes if h.nodes[n]["op"].get("residual")]
    assert len(fused) == blocks
    for n in fused:  # the add's ReLU came along; the residual is ready before the conv runs
        assert h.nodes[n]["op"].get("act") == "relu" and len(h.nodes[n]["inputs"]) == 2
        order = list(h.nodes)
        assert order.index(h.nodes[n]["inputs"][1]) < order.index(n)
