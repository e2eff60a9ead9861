"""The memory plan, checked by executing it.

:func:`execute_in_buffers` runs a graph the way generated code does: every tensor lives in
its planned buffer (views and in-place ops at their input's place, concat inputs in their
channel slice of the concat), so a plan that lets two live tensors share memory gives a
wrong output. This check is independent of the planner's own liveness code.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes_random import graphs  # the random-graph strategy (tests/ is on sys.path under pytest)

from cnnc.frontend import load
from cnnc.graph import GraphBuilder, ordered
from cnnc.params import random as random_params
from cnnc.passes import manager
from cnnc.passes.memplan import describe
from cnnc.passes.params import effective_params
from cnnc.runtime.reference import OPS, run

ARCHS = Path(__file__).resolve().parent.parent / "archs"
VIEWS = {"flatten", "slice", "dropout", "relu", "softmax"}


def _placements(g) -> dict[str, tuple[int, int]]:
    """node -> (buffer, start element per image), from the annotations alone."""
    place: dict[str, tuple[int, int]] = {}
    # concat inputs sit inside the concat: resolve from the last concat backwards
    inside: dict[str, tuple[str, int]] = {}
    for n in reversed(ordered(g)):
        op = g.nodes[n]["op"]
        if op.kind == "concat" and op.get("inplace"):
            off = 0
            for i in g.nodes[n]["inputs"]:
                inside[i] = (n, off)
                off += prod(g.nodes[i]["shape"])

    def start(n: str) -> int:
        d = g.nodes[n]
        if n in inside:
            c, off = inside[n]
            return start(c) + off
        op = d["op"]
        src = d["inputs"][0] if d["inputs"] else None
        if op.kind == "slice":
            return start(src) + op["start"] * prod(d["shape"][1:])
        if op.kind in VIEWS and g.nodes[src]["buffer"] == d["buffer"]:
            return start(src)
        return 0

    for n in g.nodes:
        place[n] = (g.nodes[n]["buffer"], start(n))
    return place


def execute_in_buffers(g, params, x) -> np.ndarray:
    """The output of ``g`` computed with every tensor stored in its planned buffer."""
    n_img = x.shape[0]
    bufs = {b: np.full((n_img, size), np.nan) for b, size in g.graph["buffers"].items()}
    place = _placements(g)
    weights = effective_params(g, params, np.float64)

    def read(n):
        b, s = place[n]
        length = prod(g.nodes[n]["shape"])
        return bufs[b][:, s:s + length].reshape((n_img,) + tuple(g.nodes[n]["shape"])).copy()

    def write(n, y):
        b, s = place[n]
        length = prod(g.nodes[n]["shape"])
        assert s + length <= bufs[b].shape[1], f"{n} overflows buffer {b}"
        bufs[b][:, s:s + length] = y.reshape(n_img, length)

    for n in ordered(g):
        d = g.nodes[n]
        op = d["op"]
        if op.kind == "input":
            write(n, x)
            continue
        if op.kind == "concat" and op.get("inplace"):
            continue  # its inputs wrote it
        if op.kind == "slice":
            continue  # a view
        if n in weights:
            p = {"weight": weights[n][0], "bias": weights[n][1]}
        elif op.kind == "batchnorm":
            p = {s: params[f"{n}.{s}"].astype(np.float64) for s in ("weight", "bias", "running_mean", "running_var")}
        else:
            p = {}
        write(n, OPS[op.kind](op, [read(i) for i in d["inputs"]], p))
    return read(g.graph["output"])


def check_plan(g, seed: int = 0) -> None:
    params = random_params(g, seed=seed)
    x = np.random.default_rng(seed).standard_normal((2,) + g.nodes["input"]["shape"])
    want = run(g, params, x)
    for extra in ([], ["hfuse:include_concat_inputs=true"]):
        h = manager.run_pipeline(g, level=1, passes=extra, verify=True, log=None)
        got = execute_in_buffers(h, params, x)
        assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want)), extra
    h = manager.run_pipeline(g, level=0, passes=["memplan"], verify=True, log=None)  # the source graph's plan
    got = execute_in_buffers(h, params, x)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


@pytest.mark.parametrize("name", ["lenet5", "inception_naive", "inception_reduced", "nin", "googlenet"])
def test_plans_of_networks_execute_correctly(name: str) -> None:
    check_plan(load(ARCHS / f"{name}.cnn"))


def test_a_wrong_plan_is_caught_by_execution() -> None:
    """The executor above does detect a plan that shares a live buffer."""
    b = GraphBuilder("t", (2, 5, 5))
    a = b.layer("conv", b.input, filters=3, kernel=3, pad=1)
    c = b.layer("conv", a, filters=3, kernel=3, pad=1)
    g = b.finish(b.layer("add", [a, c]))
    h = manager.run_pipeline(g, level=0, passes=["memplan"], log=None)
    params = random_params(g, 0)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    assert np.allclose(execute_in_buffers(h, params, x), run(g, params, x))
    h.nodes[c]["buffer"] = h.nodes[a]["buffer"]  # c overwrites a, which the add still reads
    assert not np.allclose(execute_in_buffers(h, params, x), run(g, params, x))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 1000))
def test_plans_of_random_graphs_execute_correctly(g, seed: int) -> None:
    check_plan(g, seed)


def test_inplace_relu_only_when_its_input_dies() -> None:
    b = GraphBuilder("t", (2, 6, 6))
    a = b.layer("maxpool", b.input, kernel=2)
    r = b.layer("relu", a)  # a is also read by the add below: relu must not overwrite it
    g = b.finish(b.layer("add", [a, r]))
    h = manager.run_pipeline(g, level=0, passes=["memplan"], verify=True, log=None)
    assert h.nodes[r]["buffer"] != h.nodes[a]["buffer"]
    b = GraphBuilder("t", (2, 6, 6))
    a = b.layer("maxpool", b.input, kernel=2)
    r = b.layer("relu", a)
    g = b.finish(b.layer("conv", r, filters=2, kernel=1))
    h = manager.run_pipeline(g, level=0, passes=["memplan"], verify=True, log=None)
    assert h.nodes[r]["buffer"] == h.nodes[a]["buffer"]
    # never in place on the network input (the caller's array)
    b = GraphBuilder("t", (2, 6, 6))
    g = b.finish(b.layer("relu", b.input))
    h = manager.run_pipeline(g, level=0, passes=["memplan"], verify=True, log=None)
    assert h.nodes["relu1"]["buffer"] != h.nodes["input"]["buffer"]


@pytest.mark.parametrize("case", ["block", "later", "input", "own", "depthwise"])
def test_a_conv_overwrites_its_residual_where_nothing_reads_it_after(case: str) -> None:
    from test_codegen_schedule import residual_block

    g, c = residual_block(case)
    h = manager.run_pipeline(g, level=1, log=None)
    z = h.nodes[c]["inputs"][1]
    assert (h.nodes[c]["buffer"] == h.nodes[z]["buffer"]) == (case == "block")
    check_plan(g, 4)


def test_memory_report_text() -> None:
    g = load(ARCHS / "vgg16.cnn")
    h = manager.run_pipeline(g, level=1, log=None)
    text = describe(h)
    # ARCHITECTURES.md VGG: 15,237,608 activation values with the input; two 224x224x64 buffers after
    assert text == ("peak activation memory per image: 15,237,608 -> 6,422,528 elements "
                    "(61 MB -> 25.7 MB float32, 58% less), 2 buffers")
    assert describe(g) is None
