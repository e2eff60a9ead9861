"""The backend-neutral schedule, executed by a NumPy interpreter of its steps.

Interpreting a :class:`Plan` step by step on real buffers (each tensor read and written at
its buffer offset, in place where the plan says so) checks the aliasing and the buffer
reuse by liveness on hundreds of random graphs, at -O0 and -O1, without compiling anything:
a buffer reused too early, or a concat slice placed wrongly, changes the output.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_passes_random import graphs  # the pass engineer's random-graph generator

from cnnc.codegen.schedule import INPUT_BUFFER, Plan, Ref, mangle, schedule
from cnnc.graph import GraphBuilder
from cnnc.params import random as random_params
from cnnc.passes.manager import run_pipeline
from cnnc.passes.params import effective_params
from cnnc.runtime.reference import OPS, run


def interpret(plan: Plan, g, params, x: np.ndarray) -> np.ndarray:
    """Run ``plan``'s steps with the reference kernels on float64 buffers."""
    n = x.shape[0]
    bufs = {name: np.full((n, size), np.nan) for name, size in plan.buffers.items()}
    bufs[INPUT_BUFFER] = x.reshape(n, -1).astype(np.float64)
    weights = effective_params(g, params, np.float64)

    def view(r: Ref) -> np.ndarray:
        return bufs[r.buffer][:, r.offset:r.offset + r.size].reshape((n, *r.shape))

    for s in plan.steps:
        if s.kind == "concat":
            continue
        xs = [view(r).copy() for r in s.inputs]
        if s.kind == "copy":
            y = xs[0]
        else:
            if s.weights is not None:
                w, b = weights[s.weights]
                p = {"weight": w, "bias": b}
            elif s.kind == "batchnorm":
                p = {k: params[f"{s.node}.{k}"].astype(np.float64)
                     for k in ("weight", "bias", "running_mean", "running_var")}
            else:
                p = {}
            y = OPS[s.kind](s.op, xs, p)
        assert s.output.buffer != INPUT_BUFFER, "a step writes the caller's input"
        bufs[s.output.buffer][:, s.output.offset:s.output.offset + s.output.size] = y.reshape(n, -1)
    return view(plan.output)


def check(g, seed: int) -> None:
    params = random_params(g, seed)
    x = np.random.default_rng(seed).standard_normal((2, *g.nodes[g.graph["input"]]["shape"]))
    ref = run(g, params, x)
    for graph in (g, run_pipeline(g, 1, log=None)):
        plan = schedule(graph)
        y = interpret(plan, graph, params, x)
        err = float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-300))
        assert err <= 1e-9, f"passes {graph.graph['passes']}: relative error {err:.1e}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 2**16))
def test_random_schedules_compute_the_reference(g, seed: int) -> None:
    check(g, seed)


def _cat_graph(inplace: bool):
    b = GraphBuilder("cat", (4, 5, 5))
    a = b.layer("conv", b.input, filters=3, kernel=3, pad=1)
    r = b.layer("relu", a)
    c = b.layer("conv", b.input, filters=2, kernel=1)
    cat = b.layer("concat", [r, b.input, c])
    g = b.finish(b.layer("relu", cat))
    if inplace:
        g.nodes[cat]["op"] = g.nodes[cat]["op"].replace(inplace=True)
    return g


def test_inplace_concat_copies_what_it_cannot_place() -> None:
    plan = schedule(_cat_graph(True))
    kinds = [(s.node, s.kind) for s in plan.steps]
    # the graph input cannot be computed into the concat: it alone is copied
    assert kinds.count(("concat1", "copy")) == 1
    conv1 = next(s for s in plan.steps if s.node == "conv1")
    conv2 = next(s for s in plan.steps if s.node == "conv2")
    assert conv1.output.buffer == conv2.output.buffer
    assert (conv1.output.offset, conv2.output.offset) == (0, 7 * 25)
    check(_cat_graph(True), 1)
    plain = schedule(_cat_graph(False))
    assert [s.kind for s in plain.steps].count("copy") == 3


def test_relu_in_place_only_for_a_single_reader() -> None:
    b = GraphBuilder("r", (2, 4, 4))
    c = b.layer("conv", b.input, filters=2, kernel=1)
    r = b.layer("relu", c)
    g = b.finish(b.layer("add", [c, r]))
    plan = schedule(g)
    relu = next(s for s in plan.steps if s.kind == "relu")
    assert not relu.inplace and relu.output.buffer != relu.inputs[0].buffer
    check(g, 2)
    b = GraphBuilder("r", (2, 4, 4))
    g = b.finish(b.layer("relu", b.input))  # never writes the caller's input
    assert not schedule(g).steps[0].inplace


def residual_block(case: str):
    """A ResNet block (``x -> conv -> conv + x``, the add fused into the second conv at -O1) and the variants whose
    residual must not be overwritten: read again after the conv (``later``), the caller's input (``input``), the
    conv's own input (``own``), or a depthwise conv's (CUDA adds its residual in a second launch)."""
    b = GraphBuilder("res", (8, 6, 6))
    x = b.input if case == "input" else b.layer("relu", b.layer("conv", b.input, filters=8, kernel=1))
    a = x if case == "own" else b.layer("relu", b.layer("conv", x, filters=8, kernel=3, pad=1))
    c = b.layer("conv", a, filters=8, kernel=3, pad=1, groups=8 if case == "depthwise" else 1)
    s = b.layer("add", [x, c])
    return b.finish(b.layer("add", [s, x]) if case == "later" else s), c


@pytest.mark.parametrize("case", ["block", "later", "input", "own", "depthwise"])
def test_a_conv_overwrites_its_residual_where_nothing_reads_it_after(case: str) -> None:
    g, c = residual_block(case)
    h = run_pipeline(g, 1, log=None)
    assert h.nodes[c]["op"].get("residual")
    step = next(s for s in schedule(h).steps if s.node == c)
    z = step.inputs[1]
    if case == "block":  # the block's input is read by its first conv, then last by this one
        assert step.inplace and (step.output.buffer, step.output.offset) == (z.buffer, z.offset)
    else:
        assert not step.inplace and step.output.buffer != z.buffer
    check(g, 3)


def test_names_are_identifiers() -> None:
    taken: set[str] = set()
    assert mangle("i3a/b2/conv1", taken) == "i3a_b2_conv1"
    assert mangle("i3a_b2/conv1", taken) == "i3a_b2_conv1_2"
    assert mangle("3x", taken).isidentifier()


@pytest.mark.parametrize("net", ["googlenet", "vgg16"])
def test_buffers_are_reused(net: str) -> None:
    from pathlib import Path

    from cnnc.frontend import load

    g = load(Path(__file__).resolve().parents[1] / "archs" / f"{net}.cnn")
    plan = schedule(run_pipeline(g, 1, log=None))
    total = sum(plan.buffers.values())
    acts = sum(int(g.nodes[n]["cost"].activations) for n in g.nodes) - int(g.nodes["input"]["cost"].activations)
    assert total <= acts / 2  # liveness reuse, not one buffer per layer
