"""Bottleneck insertion: the inception lessons of ../shared/ARCHITECTURES.md, the report,
the parameter list and the policy options."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from cnnc.errors import CnncError
from cnnc.frontend import load
from cnnc.graph import GraphBuilder, output_shape, param_specs, totals
from cnnc.params import init
from cnnc.passes import bottleneck, manager
from cnnc.passes.verify import verify
from cnnc.runtime.reference import run

ARCHS = Path(__file__).resolve().parent.parent / "archs"


def net(name: str):
    return load(ARCHS / f"{name}.cnn")


def same_architecture(a, b) -> bool:
    """Isomorphic graphs whose nodes agree on op kind, shape and cost."""
    def match(x, y):
        return x["op"].kind == y["op"].kind and x["shape"] == y["shape"] and x["cost"] == y["cost"]

    return nx.is_isomorphic(a, b, node_match=match)


def test_naive_inception_becomes_the_reduced_module() -> None:
    g = net("inception_naive")
    h = manager.run_pipeline(g, level=0, passes=["bottleneck"], verify=True, log=None)
    # ARCHITECTURES.md inception lessons 1 and 2
    assert totals(g).macs == 854_196_224 and totals(h).macs == 271_351_808
    assert output_shape(g) == (672, 28, 28) and output_shape(h) == (480, 28, 28)
    assert same_architecture(h, net("inception_reduced"))
    t = h.graph["reports"]["bottleneck"]["total"]
    assert (t["macs_before"], t["macs_after"]) == (854_196_224, 271_351_808)
    assert (t["output_before"], t["output_after"]) == ([672, 28, 28], [480, 28, 28])
    kinds = [(i["kind"], i["width"], i["in_channels"]) for i in h.graph["reports"]["bottleneck"]["insertions"]]
    assert kinds == [("reduce", 64, 256), ("reduce", 64, 256), ("project", 64, 256)]


def test_conv5x5_with_width_16() -> None:
    g = net("conv5x5")
    h = manager.run_pipeline(g, level=0, passes=["bottleneck:width=16"], verify=True, log=None)
    # ARCHITECTURES.md inception lesson 3
    assert totals(g).macs == 120_422_400 and totals(h).macs == 12_443_648
    assert same_architecture(h, net("conv5x5_bottleneck"))
    (ins,) = h.graph["reports"]["bottleneck"]["insertions"]
    assert (ins["macs_before"], ins["macs_after"]) == (120_422_400, 2_408_448 + 10_035_200)


def test_report_format() -> None:
    g = net("inception_naive")
    h = bottleneck.run(g)
    lines = bottleneck.format_report(h.graph["reports"]["bottleneck"]).splitlines()
    assert len(lines) == 4
    # one line per insertion: where, what, MACs and params before -> after
    pat = re.compile(r"bottleneck: (reduce before|project after) (\S+) \((.*)\): 1x1 (\d+) -> (\d+) (\S+); "
                     r"MACs ([\d,]+) -> ([\d,]+) \((.*)\), params ([\d,]+) -> ([\d,]+)$")
    rows = [pat.match(line) for line in lines[:3]]
    assert all(rows), lines
    # 3x3 branch: 28x28x192x3x3x256 = 346,816,512 before; 12,845,056 + 86,704,128 after (ARCHITECTURES.md)
    assert rows[0].group(7, 8, 9) == ("346,816,512", "99,549,184", "3.48x fewer")
    assert rows[0].group(6) == rows[0].group(2) + "_reduce"
    # weights 192*256*9 + 192 biases before; 64*256 + 64 and 192*64*9 + 192 after
    assert rows[0].group(10, 11) == (f"{192 * 256 * 9 + 192:,}", f"{64 * 256 + 64 + 192 * 64 * 9 + 192:,}")
    assert rows[2].group(1) == "project after" and rows[2].group(7, 9) == ("0", "new")
    assert lines[3] == ("bottleneck total: 3 insertions; MACs 854,196,224 -> 271,351,808 (3.15x fewer); "
                        f"params {totals(g).params:,} -> {totals(h).params:,}; output 672x28x28 -> 480x28x28")


def test_the_pipeline_logs_the_report() -> None:
    logged: list[str] = []
    manager.run_pipeline(net("conv5x5"), level=1, passes=["bottleneck:width=16"], log=logged.append)
    assert logged[0].startswith("bottleneck: reduce before conv1 (5x5, 192 -> 32): 1x1 192 -> 16 conv1_reduce;")
    assert logged[1].startswith("bottleneck total: 1 insertions; MACs 120,422,400 -> 12,443,648")


def test_new_layers_get_parameters() -> None:
    g = net("conv5x5")
    h = manager.run_pipeline(g, level=1, passes=["bottleneck:width=16"], verify=True, log=None)
    names = [n for n, _ in h.graph["params"]]
    assert names == ["conv1_reduce.weight", "conv1_reduce.bias", "conv1.weight", "conv1.bias"]
    assert dict(h.graph["params"])["conv1_reduce.weight"] == (16, 192, 1, 1)
    assert dict(h.graph["params"])["conv1.weight"] == (32, 16, 5, 5)
    p = init(h, seed=0)  # He-normal weights for the new layer too
    assert set(p) == set(names) and np.std(p["conv1_reduce.weight"]) > 0
    x = np.random.default_rng(0).standard_normal((1, 192, 28, 28))
    assert run(h, p, x).shape == (1, 32, 28, 28)


def test_policy_options() -> None:
    g = net("inception_naive")
    h = bottleneck.run(g, min_saving=4.0)  # the 3x3 (3.48x) and 5x5 (3.61x) reductions no longer pay
    assert [i["kind"] for i in h.graph["reports"]["bottleneck"]["insertions"]] == ["project"]
    assert bottleneck.run(g, ratio=0.5, project_pools=False).graph["reports"]["bottleneck"]["insertions"] == []
    # halving 256 channels saves 1.74x (3x3) and 1.81x (5x5): enough for min_saving=1.5
    h = bottleneck.run(g, ratio=0.5, project_pools=False, min_saving=1.5)
    ins = h.graph["reports"]["bottleneck"]["insertions"]
    assert [(i["kind"], i["width"]) for i in ins] == [("reduce", 128), ("reduce", 128)]
    assert output_shape(h) == (128 + 192 + 96 + 256, 28, 28)
    # a width that is no reduction inserts nothing
    assert bottleneck.run(g, width=256).graph["reports"]["bottleneck"]["insertions"] == []
    with pytest.raises(CnncError, match="ratio"):
        bottleneck.run(g, ratio=0)


def test_already_reduced_inputs_are_left_alone() -> None:
    g = net("inception_reduced")
    h = bottleneck.run(g)
    assert h.graph["reports"]["bottleneck"]["insertions"] == []
    assert totals(h).macs == totals(g).macs == 271_351_808


def test_small_or_flat_layers() -> None:
    b = GraphBuilder("t", (3, 8, 8))
    x = b.layer("conv", b.input, filters=8, kernel=3, pad=1)
    g = b.finish(b.layer("fc", b.layer("relu", x), out=4))
    h = bottleneck.run(g)  # 3 input channels are not wide (min_channels=16)
    assert h.graph["reports"]["bottleneck"]["insertions"] == []
    h = bottleneck.run(g, min_channels=3)  # 3 -> 1 channel: 13,824 -> 192 + 4,608 MACs, 2.88x
    (ins,) = h.graph["reports"]["bottleneck"]["insertions"]
    assert (ins["width"], ins["macs_before"], ins["macs_after"]) == (1, 13_824, 4_800)
    verify(h)


def test_bottleneck_needs_the_source_graph() -> None:
    g = manager.run_pipeline(net("inception_naive"), level=1, log=None)
    with pytest.raises(CnncError, match="run bottleneck first"):
        manager.run_pass(g, "bottleneck")
    # the pipeline orders it first whatever the spec order
    steps = manager.plan(1, ["hfuse", "bottleneck:ratio=0.5"])
    assert steps[0] == ("bottleneck", {"ratio": 0.5})


def test_params_list_matches_the_new_graph() -> None:
    g = net("inception_naive")
    h = manager.run_pipeline(g, level=0, passes=["bottleneck"], log=None)
    assert h.graph["params"] == param_specs(h)
    new = [n for n, _ in h.graph["params"] if "_reduce." in n or "_proj." in n]
    assert len(new) == 6  # weight and bias of three new 1x1 convs
