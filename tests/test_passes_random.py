"""Differential tests of every value-preserving pass on hypothesis-generated graphs.

Random chains, branches (sibling convs of one input, as in inception modules), concats,
adds, pools, 1x1/3x3/5x5 convs, batchnorms, dropouts, dead branches and classifier heads,
at small spatial sizes. For each graph: every pass alone and the -O1 pipeline give the
float64 reference output to 1e-5 relative error, and the verifier passes after every pass.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cnnc.errors import ShapeError
from cnnc.graph import GraphBuilder
from cnnc.params import random as random_params
from cnnc.passes import manager
from cnnc.runtime.reference import run

PRESERVING = [p for p in manager.ORDER if manager.get(p).PRESERVES_VALUES]
TOL = 1e-5


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


class Net:
    """A GraphBuilder that skips layers whose shapes do not fit (tiny maps)."""

    def __init__(self, shape: tuple[int, int, int]):
        self.b = GraphBuilder("random", shape)
        self.tensors = [self.b.input]

    def shape(self, x: str) -> tuple[int, ...]:
        return self.b.g.nodes[x]["shape"]

    def add(self, kind: str, inputs, **attrs) -> str | None:
        try:
            y = self.b.layer(kind, inputs, **attrs)
        except ShapeError:
            return None
        if len(self.shape(y)) == 3:
            self.tensors.append(y)
        return y


def conv_attrs(draw, cin: int) -> dict:
    k = draw(st.sampled_from([1, 3, 5]))
    pad = draw(st.sampled_from([k // 2, k // 2, 0]))
    stride = draw(st.sampled_from([1, 1, 1, 2]))
    filters = draw(st.integers(1, 6))
    groups = 1
    if cin % 2 == 0 and draw(st.booleans()) and draw(st.booleans()):
        groups, filters = 2, 2 * filters
    return {"filters": filters, "kernel": k, "pad": pad, "stride": stride, "groups": groups,
            "bias": draw(st.booleans())}


@st.composite
def graphs(draw):
    c = draw(st.integers(1, 5))
    hw = draw(st.integers(4, 9))
    net = Net((c, hw, hw))
    x = net.b.input
    for _ in range(draw(st.integers(1, 7))):
        # mostly extend the latest tensor; sometimes branch from an earlier one
        src = x if draw(st.integers(0, 3)) else draw(st.sampled_from(net.tensors))
        cin, h, w = net.shape(src)
        kind = draw(st.sampled_from(
            ["conv", "conv_bn_relu", "conv_relu", "relu", "bn", "pool", "dropout", "lrn",
             "inception", "inception", "inception", "siblings", "siblings", "add", "concat", "dead"]))
        y = None
        if kind == "conv":
            y = net.add("conv", src, **conv_attrs(draw, cin))
        elif kind in ("conv_relu", "conv_bn_relu"):
            y = net.add("conv", src, **conv_attrs(draw, cin))
            if y and kind == "conv_bn_relu":
                y = net.add("batchnorm", y, eps=draw(st.sampled_from([1e-5, 1e-3])))
            y = y and net.add("relu", y)
        elif kind == "relu":
            y = net.add("relu", src)
        elif kind == "bn":
            y = net.add("batchnorm", src)
        elif kind == "dropout":
            y = net.add("dropout", src, p=0.5)
        elif kind == "lrn":
            y = net.add("lrn", src, size=draw(st.sampled_from([3, 5])), k=2.0)
        elif kind == "pool":
            pk = draw(st.sampled_from(["maxpool", "avgpool"]))
            k, s = draw(st.sampled_from([(3, 1), (2, 2), (3, 2)]))
            y = net.add(pk, src, kernel=k, stride=s, pad=1 if k == 3 and s == 1 else 0,
                        round=draw(st.sampled_from(["floor", "ceil"])))
        elif kind in ("inception", "siblings"):
            # inception-like: 1x1 convs of one input, some feeding 3x3/5x5 convs, all into a concat
            branches = []
            act = draw(st.booleans())
            for _ in range(draw(st.integers(2, 4))):
                b = net.add("conv", src, filters=draw(st.integers(1, 5)), kernel=1)
                if b and act:
                    b = net.add("relu", b)
                if b and draw(st.booleans()):
                    k = draw(st.sampled_from([3, 5]))
                    b = net.add("conv", b, filters=draw(st.integers(1, 5)), kernel=k, pad=k // 2)
                if b and draw(st.booleans()):
                    b = net.add("batchnorm", b)
                if b:
                    branches.append(b)
            if draw(st.booleans()):
                p = net.add("maxpool", src, kernel=3, stride=1, pad=1)
                branches.append(net.add("conv", p, filters=2, kernel=1) if draw(st.booleans()) else p)
            if kind == "inception" and len(branches) > 1:
                y = net.add("concat", branches)
            else:
                y = branches[-1] if branches else None
                if len(branches) > 1 and net.shape(branches[0]) == net.shape(branches[-1]):
                    y = net.add("add", [branches[0], branches[-1]])
        elif kind == "add":
            f = draw(st.integers(1, 5))
            a = net.add("conv", src, filters=f, kernel=3, pad=1)
            b = net.add("conv", src, filters=f, kernel=1)
            y = net.add("add", [a, b, src] if cin == f else [a, b]) if a and b else None
        elif kind == "concat":
            same = [t for t in net.tensors if net.shape(t)[1:] == (h, w)]
            picks = draw(st.lists(st.sampled_from(same), min_size=1, max_size=3))
            y = net.add("concat", [src, *picks])
        elif kind == "dead":
            net.add("conv", src, filters=2, kernel=1)  # nothing reads it
        if y is not None:
            x = y
    head = draw(st.sampled_from(["none", "gap_fc", "flatten_fc", "fc_relu_fc", "softmax"]))
    if head == "gap_fc":
        x = net.add("fc", net.add("gap", x), out=draw(st.integers(1, 6)))
    elif head == "flatten_fc":
        x = net.add("fc", net.add("flatten", x), out=4)
    elif head == "fc_relu_fc":
        x = net.add("fc", net.add("relu", net.add("fc", x, out=5)), out=3)
        x = net.add("batchnorm", x) if draw(st.booleans()) else x
    elif head == "softmax":
        x = net.add("softmax", net.add("fc", x, out=3))
    return net.b.finish(x)


def check(g, seed: int) -> None:
    params = random_params(g, seed=seed)
    x = np.random.default_rng(seed).standard_normal((2,) + g.nodes["input"]["shape"])
    want = run(g, params, x)
    for p in PRESERVING:
        h = manager.run_pipeline(g, level=0, passes=[p], verify=True, log=None)
        assert rel_err(run(h, params, x), want) <= TOL, p
    for extra in ([], ["hfuse:include_concat_inputs=true"]):
        h = manager.run_pipeline(g, level=1, passes=extra, verify=True, log=None)
        assert rel_err(run(h, params, x), want) <= TOL, f"-O1 {extra}"
        assert h.graph["memory"]["after"] <= h.graph["memory"]["before"]


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 2**16))
def test_random_graphs_keep_their_values(g, seed: int) -> None:
    check(g, seed)


def test_generator_exercises_every_pass() -> None:
    """The generator does produce graphs where each pass has work to do."""
    from hypothesis import find

    def changed_by(p):
        def pred(g):
            h = manager.run_pipeline(g, level=0, passes=[p], log=None)
            return [h.nodes[n]["op"] for n in h.nodes] != [g.nodes[n]["op"] for n in g.nodes]
        return pred

    for p in ("dropout", "dce", "bn_fold", "fuse_relu", "concat_elim", "hfuse", "fuse_add"):
        g = find(graphs(), changed_by(p),
                 settings=settings(max_examples=500, database=None, phases=[Phase.generate]))
        check(g, 0)
