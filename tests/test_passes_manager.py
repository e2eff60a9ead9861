"""The pass manager (levels, specs, ordering, dumps), the verifier, and the CLI pass options."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from cnnc.cli import main
from cnnc.errors import CnncError, GraphError
from cnnc.frontend import load
from cnnc.graph import GraphBuilder, param_specs
from cnnc.ops import Op, make_op
from cnnc.passes import dump as dumps
from cnnc.passes import manager
from cnnc.passes.rewrite import clone
from cnnc.passes.verify import problems, verify

ARCHS = Path(__file__).resolve().parent.parent / "archs"
PRESERVING = ["dropout", "dce", "bn_fold", "fuse_relu", "concat_elim", "hfuse", "fuse_add", "memplan"]


def small():
    """conv-bn-relu, a dropout, a dead conv, two sibling 1x1 convs into a concat."""
    b = GraphBuilder("small", (4, 6, 6))
    x = b.layer("relu", b.layer("batchnorm", b.layer("conv", b.input, filters=6, kernel=3, pad=1)))
    x = b.layer("dropout", x)
    b.layer("conv", x, filters=2, kernel=1, name="dead")
    a = b.layer("conv", b.layer("conv", x, filters=3, kernel=1), filters=2, kernel=3, pad=1)
    c = b.layer("conv", b.layer("conv", x, filters=2, kernel=1), filters=2, kernel=3, pad=1)
    return b.finish(b.layer("concat", [a, c]))


def snapshot(g):
    return dumps.to_json(g), dict(g.graph), [dict(g.nodes[n]) for n in g.nodes]


# ---------------------------------------------------------------- specs and plans

def test_levels_and_order() -> None:
    assert manager.plan(0) == []
    assert [n for n, _ in manager.plan(1)] == PRESERVING
    assert manager.plan(0, ["memplan", "fuse_relu"]) == [("fuse_relu", {}), ("memplan", {})]
    assert manager.plan(1, ["hfuse:min_group=3", "dce"])[PRESERVING.index("hfuse")] == ("hfuse", {"min_group": 3})
    assert len(manager.plan(1, ["dce", "dce"])) == len(PRESERVING)
    with pytest.raises(CnncError, match="-O2"):
        manager.plan(2)


def test_spec_parsing() -> None:
    assert manager.parse_spec("bottleneck:ratio=0.5, min_saving=3,project_pools=no") == (
        "bottleneck", {"ratio": 0.5, "min_saving": 3.0, "project_pools": False})
    assert manager.parse_spec("bottleneck:width=16") == ("bottleneck", {"width": 16})
    with pytest.raises(CnncError, match="unknown pass 'fold'; known passes: bottleneck, dropout, dce"):
        manager.parse_spec("fold")
    with pytest.raises(CnncError, match="has no option 'widht'; its options: ratio, width, min_saving"):
        manager.parse_spec("bottleneck:widht=3")
    with pytest.raises(CnncError, match="width='x' is not a valid int"):
        manager.parse_spec("bottleneck:width=x")
    with pytest.raises(CnncError, match="key=value"):
        manager.parse_spec("bottleneck:width")
    with pytest.raises(CnncError, match="pass 'dce' has no option 'x'; its options: none"):
        manager.parse_spec("dce:x=1")


def test_every_pass_documents_its_contract() -> None:
    for name in manager.ORDER:
        mod = manager.get(name)
        doc = mod.__doc__ or ""
        assert "Requires:" in doc and "Ensures:" in doc and "Preserves values:" in doc, name
        assert isinstance(mod.PRESERVES_VALUES, bool)
    assert not manager.get("bottleneck").PRESERVES_VALUES


# ---------------------------------------------------------------- running

def test_pipeline_records_params_and_passes_and_never_mutates() -> None:
    g = small()
    before = snapshot(g)
    h = manager.run_pipeline(g, level=1, verify=True, log=None)
    assert snapshot(g) == before
    assert h.graph["params"] == param_specs(g)  # the source list, including the folded batchnorm's
    assert h.graph["passes"] == PRESERVING
    assert "dead" not in h and not any(h.nodes[n]["op"].kind in ("dropout", "relu", "batchnorm") for n in h)


@pytest.mark.parametrize("name", PRESERVING + ["bottleneck"])
def test_each_pass_leaves_its_input_alone(name: str) -> None:
    g = manager.run_pipeline(load(ARCHS / "googlenet.cnn"), level=0, log=None)
    if name in ("hfuse", "memplan"):  # give them annotated input to copy
        g = manager.run_pipeline(g, level=0, passes=["fuse_relu", "concat_elim"], log=None)
    before = snapshot(g)
    h = manager.run_pass(g, name)
    assert h is not g and snapshot(g) == before
    assert h.graph["passes"] == g.graph["passes"] + [name]


def test_dumps() -> None:
    out: list[str] = []
    manager.run_pipeline(small(), level=1, dump_after="all", dump=out.append, log=None)
    assert len(out) == len(PRESERVING)
    assert out[3].startswith("# small after pass fuse_relu\n# passes: dropout, dce, bn_fold, fuse_relu\n")
    assert "conv1 = conv(6, 3, pad=1, parts=[conv1:6+batchnorm1], act=relu) <- input    # 6x6x6, 7,776 MACs" in out[3]
    assert "slice(start=0, stop=3)" in out[5] and "buffer" in out[7]
    out.clear()
    manager.run_pipeline(small(), level=1, dump_after="hfuse", dump=out.append, dump_format="json", log=None)
    (doc,) = [json.loads(t) for t in out]
    fused = [n for n in doc["nodes"] if len(n["attrs"].get("parts", [])) == 2]
    assert len(fused) == 1 and fused[0]["attrs"]["filters"] == 5
    with pytest.raises(CnncError, match="does not run in this pipeline"):
        manager.run_pipeline(small(), level=0, dump_after="hfuse", log=None)
    with pytest.raises(CnncError, match="unknown pass"):
        manager.run_pipeline(small(), level=1, dump_after="nope", log=None)
    with pytest.raises(CnncError, match="dump format"):
        manager.run_pipeline(small(), level=1, dump_format="xml", log=None)


def test_verify_names_the_pass_that_broke_the_graph(monkeypatch) -> None:
    import cnnc.passes.dce as dce

    def broken(g):
        h = clone(g)
        h.nodes["conv1"]["shape"] = (7, 6, 6)
        return h

    monkeypatch.setattr(dce, "run", broken)
    with pytest.raises(GraphError, match="(?s)after pass 'dce'.*node 'conv1' has shape"):
        manager.run_pipeline(small(), level=1, verify=True, log=None)
    manager.run_pipeline(small(), level=1, verify=False, log=None)  # unchecked: no error


# ---------------------------------------------------------------- the verifier

def broken_variants():
    def edge_missing(g):
        g.remove_edge("input", "conv1")

    def shape_wrong(g):
        g.nodes["conv2"]["shape"] = (3, 5, 5)

    def concat_mismatch(g):
        from cnnc.cost import op_cost

        op = g.nodes["conv3"]["op"].replace(stride=2)
        g.nodes["conv3"].update(op=op, shape=(2, 3, 3), cost=op_cost(op, [(3, 6, 6)], (2, 3, 3)))
        g.edges["conv3", "concat1"]["shape"] = (2, 3, 3)

    def cycle(g):
        g.add_edge("concat1", "conv1")

    def no_output(g):
        g.graph["output"] = "nothing"

    def slice_out_of_range(g):
        g.nodes["dead"]["op"] = Op("slice", {"start": 4, "stop": 9})

    def bad_inplace(g):
        g.nodes["concat1"]["op"] = g.nodes["concat1"]["op"].replace(inplace=True)
        g.nodes["concat1"]["inputs"] = ["conv3", "conv3"]
        g.remove_edge("conv5", "concat1")
        g.nodes["concat1"]["shape"] = (4, 6, 6)

    def missing_part(g):
        op = g.nodes["conv2"]["op"]
        g.nodes["conv2"]["op"] = op.replace(parts=({"node": "ghost", "out": 3, "bias": True, "bn": None,
                                                     "eps": 0.0},))

    def order(g):
        g.nodes["conv3"]["inputs"] = ["conv5"]
        g.remove_edge("conv2", "conv3")
        g.add_edge("conv5", "conv3", shape=g.nodes["conv5"]["shape"])

    return {
        "edges from": edge_missing, "has shape": shape_wrong, "branches must agree": concat_mismatch,
        "cycle": cycle, "output node": no_output, "outside the": slice_out_of_range,
        "cannot write into it": bad_inplace, "no parameter ghost.weight": missing_part,
        "comes before its input": order,
    }


@pytest.mark.parametrize("message", list(broken_variants()))
def test_verifier_catches(message: str) -> None:
    g = manager.run_pipeline(small(), level=0, log=None)
    assert problems(g) == []
    broken_variants()[message](g)
    errs = problems(g)
    assert any(message in e for e in errs), errs
    with pytest.raises(GraphError, match="in the input graph"):
        verify(g)


def test_verifier_catches_overlapping_buffers() -> None:
    g = manager.run_pipeline(small(), level=1, log=None)
    verify(g)
    # put two tensors that are live together into one buffer
    old, new = g.nodes["hfuse"]["buffer"], g.nodes["conv1"]["buffer"]  # hfuse reads conv1
    assert old != new
    for n in g.nodes:
        if g.nodes[n]["buffer"] == old:
            g.nodes[n]["buffer"] = new
    size = max(g.graph["buffers"].values())
    g.graph["buffers"] = {k: size for k in g.graph["buffers"]}
    assert any("overlap" in e for e in problems(g))


def test_verifier_accepts_every_network() -> None:
    for path in sorted(ARCHS.glob("*.cnn")):
        g = load(path)
        assert problems(g) == [], path.stem
        assert nx.is_directed_acyclic_graph(g)


# ---------------------------------------------------------------- the command line

def test_inspect_with_passes(capsys) -> None:
    assert main(["inspect", str(ARCHS / "googlenet.cnn"), "-O1", "--verify"]) == 0
    out, err = capsys.readouterr()
    assert "hfuse: 9 horizontal fusion(s)" in err
    assert "peak activation memory per image: " in err
    assert "slice" in out


def test_inspect_bottleneck_and_dump(capsys) -> None:
    path = str(ARCHS / "inception_naive.cnn")
    assert main(["inspect", path, "--pass", "bottleneck", "--dump-after", "bottleneck",
                 "--dump-format", "json", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "bottleneck total: 3 insertions; MACs 854,196,224 -> 271,351,808" in err
    dumped = json.loads(err[err.index("{"):err.rindex("}") + 1])
    assert dumped["passes"] == ["bottleneck"]
    json.loads(out)  # the command's own JSON stays clean


def test_cli_errors(capsys) -> None:
    path = str(ARCHS / "conv5x5.cnn")
    assert main(["inspect", path, "--pass", "bottleneck:widht=16"]) == 2
    assert "pass 'bottleneck' has no option 'widht'; its options: ratio, width" in capsys.readouterr().err
    assert main(["inspect", path, "--pass", "unroll"]) == 2
    assert "unknown pass 'unroll'; known passes:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", path, "-O3"])


def test_make_op_slice_free_cost() -> None:
    b = GraphBuilder("t", (4, 3, 3))
    g = b.finish(b.layer("conv", b.input, filters=4, kernel=1))
    g.add_node("s", op=Op("slice", {"start": 1, "stop": 3}), inputs=["conv1"])
    from cnnc.graph import refresh

    g.add_edge("conv1", "s")
    refresh(g)
    assert g.nodes["s"]["shape"] == (2, 3, 3) and g.nodes["s"]["cost"].activations == 0
    assert make_op("conv", filters=1, kernel=1).get("act") is None
