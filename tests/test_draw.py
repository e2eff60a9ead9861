"""Pictures (cnnc.draw): the geometry cnnc computes, checked on every network in archs/, and the SVG
it renders (XML-valid, deterministic, no script, every name escaped). Layout only: nothing compiles."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

from cnnc.draw import diff_picture, graph_svg, layout, picture, svg
from cnnc.draw.layout import SCALE, Box, Layout
from cnnc.errors import CnncError
from cnnc.frontend import load, parse
from cnnc.fuzz import corpus, mutate, random_steps
from cnnc.graph import GraphBuilder
from cnnc.passes.manager import run_pipeline

ROOT = Path(__file__).resolve().parent.parent
ARCHS = sorted((ROOT / "archs").glob("*.cnn"))
SVG = "{http://www.w3.org/2000/svg}"


@cache
def graph(name: str, level: int) -> nx.DiGraph:
    return run_pipeline(load(ROOT / "archs" / f"{name}.cnn"), level, log=None)


def _overlap(a: Box, b: Box) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def _inside(x: float, y: float, b: Box) -> bool:
    return b.x < x < b.x + b.w and b.y < y < b.y + b.h


def check_geometry(g: nx.DiGraph, lay: Layout) -> None:
    """Every node drawn once, no overlaps, edges joining the boxes they name and crossing no other box."""
    # every layer (or block) exactly once
    seen = Counter(n for b in lay.boxes for n in b.members)
    assert set(seen) == set(g.nodes) and set(seen.values()) == {1}
    assert len({b.id for b in lay.boxes}) == len(lay.boxes)
    owner = {n: b.id for b in lay.boxes for n in b.members}
    # no two boxes overlap; all within the picture
    boxes = sorted(lay.boxes, key=lambda b: b.y)
    for i, a in enumerate(boxes):
        assert lay.x <= a.x and a.x + a.w <= lay.x + lay.width, a.id
        assert lay.y <= a.y and a.y + a.h <= lay.y + lay.height, a.id
        for b in boxes[i + 1:]:
            if b.y >= a.y + a.h:
                break
            assert not _overlap(a, b), (a.id, b.id)
    # the edges are exactly the tensors flowing between different boxes, each once
    want = {(owner[i], owner[n]) for n in g.nodes for i in g.nodes[n]["inputs"] if owner[i] != owner[n]}
    got = [(e.src, e.dst) for e in lay.edges]
    assert sorted(got) == sorted(want) and len(set(got)) == len(got)
    by_id = {b.id: b for b in lay.boxes}
    for e in lay.edges:
        a, b = by_id[e.src], by_id[e.dst]
        (x0, y0), (x1, y1) = e.points[0], e.points[-1]
        assert y0 == round(a.y + a.h, 1) and a.x <= x0 <= a.x + a.w, e
        assert y1 == b.y and b.x <= x1 <= b.x + b.w, e
        assert e.label and all(p[1] >= y0 for p in e.points)
        for (p, q) in zip(e.points, e.points[1:], strict=False):  # crosses no box but its own two
            lo, hi = min(p[1], q[1]), max(p[1], q[1])
            for other in boxes:
                if other.id in (e.src, e.dst) or other.y > hi or other.y + other.h < lo:
                    continue
                for k in range(1, 20):
                    t = k / 20
                    assert not _inside(p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]), other), (e, other.id)
    # frames hold their boxes and no other
    for f in lay.frames:
        for b in lay.boxes:
            inside = f.x <= b.x and b.x + b.w <= f.x + f.w and f.y <= b.y and b.y + b.h <= f.y + f.h
            if b.id in f.members:
                assert inside, (f.id, b.id)
            else:
                assert not _overlap(b, Box(f.id, "frame", f.x, f.y, f.w, f.h, (), (), 0, 0, "", "", "")), (f.id, b.id)


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("path", ARCHS, ids=[p.stem for p in ARCHS])
def test_every_network_expanded_and_collapsed(path: Path, level: int) -> None:
    g = graph(path.stem, level)
    for collapse in (False, True):
        lay = layout(g, collapse=collapse)
        check_geometry(g, lay)
        text = svg(picture(g, collapse=collapse))
        root = ET.fromstring(text.encode())
        assert root.tag == f"{SVG}svg"
        assert len(root.findall(f".//{SVG}rect")) >= len(lay.boxes)
        assert not root.findall(f".//{SVG}script") and "on" not in {a[:2] for el in root.iter() for a in el.attrib}
        if collapse and any(g.nodes[n]["block"] for n in g.nodes):
            assert any(b.kind == "block" for b in lay.boxes) and not lay.frames


def test_bytes_are_deterministic() -> None:
    g = graph("googlenet", 1)
    assert graph_svg(g) == graph_svg(run_pipeline(load(ROOT / "archs" / "googlenet.cnn"), 1, log=None))
    a = load(ROOT / "archs" / "inception_naive.cnn")
    b = run_pipeline(a, 0, ["bottleneck"], log=None)
    assert svg(diff_picture(a, b)) == svg(diff_picture(a, run_pipeline(a, 0, ["bottleneck"], log=None)))


def test_inception_branches_side_by_side_and_blocks_framed() -> None:
    lay = layout(graph("googlenet", 0), collapse=False)
    heads = [lay.box(f"i3a/b{k}/{n}") for k, n in ((1, "conv1"), (2, "conv1"), (3, "conv1"), (4, "maxpool1"))]
    assert len({b.y for b in heads}) == 1  # one layer
    assert [b.x for b in heads] == sorted(b.x for b in heads)  # in the order they are written
    concat = lay.box("i3a")
    assert heads[0].x < concat.cx < heads[-1].x + heads[-1].w  # the merge sits under its branches
    assert [f.id for f in lay.frames] == ["i3a", "i3b", "i4a", "i4b", "i4c", "i4d", "i4e", "i5a", "i5b"]


def test_collapse_default_and_block_totals() -> None:
    g = graph("googlenet", 0)
    lay = layout(g)  # 142 layers: collapsed by default
    assert lay.collapsed
    blocks = [b for b in lay.boxes if b.kind == "block"]
    assert [b.id for b in blocks] == ["i3a", "i3b", "i4a", "i4b", "i4c", "i4d", "i4e", "i5a", "i5b"]
    i3a = blocks[0]
    assert i3a.value == sum(int(g.nodes[n]["cost"].macs) for n in g.nodes if g.nodes[n]["block"][:1] == ("i3a",))
    assert "256x28x28" in i3a.lines and any(line.startswith("max: b2/conv2 (conv 3x3)") for line in i3a.lines)
    assert not layout(graph("vgg16", 0)).collapsed  # 40 layers: every one drawn


def test_colour_shows_where_the_parameters_sit() -> None:
    lay = layout(graph("vgg16", 1), metric="params")
    top = max(lay.boxes, key=lambda b: b.share)
    # ARCHITECTURES.md / the lecture: VGG16's first FC layer holds 102,764,544 of 138,357,544 params (74%)
    assert top.id == "fc6" and round(top.share, 3) == round(102_764_544 / 138_357_544, 3)
    assert top.fill == SCALE[-1][1] and "74.3%" in top.lines[-1]
    assert layout(graph("vgg16", 1), metric="memory").box("input").value == 3 * 224 * 224 * 4


def test_fused_layers_are_named_as_fused() -> None:
    lay = layout(graph("googlenet", 1), collapse=False)
    fused = lay.box("i3a/hfuse")
    assert fused.lines[1] == "conv 1x1 (fused 2) +relu"
    assert "i3a/b2/conv1 + i3a/b3/conv1" in fused.tooltip
    assert lay.box("i3a/b2/conv1").lines[1].startswith("slice")


def test_diff_marks_inserted_layers_and_shows_both_macs() -> None:
    before = load(ROOT / "archs" / "inception_naive.cnn")
    after = run_pipeline(before, 0, ["bottleneck"], log=None)
    pic = diff_picture(before, after)
    left, right = pic.panels
    assert max(b.x + b.w for b in left.boxes) < min(b.x for b in right.boxes)
    check_geometry(before, left)
    check_geometry(after, right)
    # README / ARCHITECTURES.md: 854,196,224 -> 271,351,808 MACs
    assert "854,196,224 MACs" in left.header[0].text and "271,351,808 MACs" in right.header[0].text
    inserted = {b.id for b in right.boxes if b.mark == "inserted"}
    assert inserted == {"concat1/b2/conv1_reduce", "concat1/b2/conv1_reduce_relu", "concat1/b3/conv1_reduce",
                        "concat1/b3/conv1_reduce_relu", "concat1/b4/maxpool1_proj", "concat1/b4/maxpool1_proj_relu"}
    assert right.box("concat1").mark == "changed" and not any(b.mark == "inserted" for b in left.boxes)
    ET.fromstring(svg(pic).encode())


HOSTILE = "<script>alert(\"x\")</script>&amp;'q' ]]> \x01"


def test_hostile_names_are_escaped() -> None:
    b = GraphBuilder("net", (3, 8, 8))
    x = b.layer("conv", b.input, name=HOSTILE, filters=4, kernel=3)
    x = b.layer("relu", x, name="<b onload='x'>")
    g = b.finish(x)
    g.graph["name"] = "</svg><script>alert(1)</script>"
    g.graph["source"] = HOSTILE + ".cnn"
    for collapse in (False, True):
        text = graph_svg(g, collapse=collapse)
        root = ET.fromstring(text.encode())  # still XML: nothing injected, no forbidden character
        assert not root.findall(f".//{SVG}script") and "<script" not in text and "<b " not in text
        assert "&lt;script&gt;" in text and "&amp;amp;" in text and "\x01" not in text
        assert all(not a.startswith("on") for el in root.iter() for a in el.attrib)


# Shapes archs/ may not have yet: residual blocks nested in stages (a shortcut runs beside a
# whole branch), and dense connections through @references with unlabelled block calls whose
# instance names repeat (layer1 in three merges).
RESNET = """
network resnet_mini
input 3x64x64
block basic(c) = add {
    conv(c, 3, pad=1, bias=false) bn relu conv(c, 3, pad=1, bias=false) bn
    identity
}
block down(c) = add {
    conv(c, 3, stride=2, pad=1, bias=false) bn relu conv(c, 3, pad=1, bias=false) bn
    conv(c, 1, stride=2, bias=false) bn
}
block stage(c) = { d: down(c) relu  r: basic(c) relu }
conv1: conv(16, 3, pad=1) relu
s1: stage(16)
s2: stage(32)
s3: stage(64)
gap flatten fc(10)
"""
DENSE = """
network dense_mini
input 3x32x32
c0: conv(8, 3, pad=1)
block layer(k) = { bn relu conv(k, 3, pad=1) }
a: concat { @c0 ; @c0 layer(4) }
b: concat { @a ; @a layer(4) }
c: concat { @b ; @b layer(4) }
conv(8, 1) t: avgpool(2)
skip: concat { @t ; @t conv(8, 3, pad=1) ; @c0 maxpool(2) }
gap flatten fc(10)
"""


@pytest.mark.parametrize("text", [RESNET, DENSE], ids=["resnet", "dense"])
def test_residual_and_dense_networks(text: str) -> None:
    g0 = parse(text)
    for level in (0, 1):
        g = run_pipeline(g0, level, log=None)
        for collapse in (False, True):
            check_geometry(g, layout(g, collapse=collapse))
    lay = layout(g0, collapse=False)
    if "dense" in text:  # one frame per instance, named by its path
        assert [f.id for f in lay.frames] == ["a/b2/layer1", "b/b2/layer1", "c/b2/layer1"]
    else:  # nested frames; the identity shortcut of s1/r drawn inside its frame
        ids = [f.id for f in lay.frames]
        assert ids[:3] == ["s1", "s1/d", "s1/r"]
        r = next(f for f in lay.frames if f.id == "s1/r")
        short = next(e for e in lay.edges if e.src == "s1/relu1" and e.dst == "s1/r")
        assert all(r.x < x < r.x + r.w for x, y in short.points if r.y < y < r.y + r.h)


def test_mutated_networks() -> None:
    """Whatever the fuzzer's mutations of archs/ still parse is drawn with sound geometry."""
    import random

    rng = random.Random(12)
    texts = list(corpus().values())
    drawn = 0
    for _ in range(80):  # many mutants fail to parse (by design), some on the files' expect claims
        text = mutate(rng.choice(texts), random_steps(rng))
        try:
            g = parse(text)
        except (CnncError, RecursionError):
            continue
        check_geometry(g, layout(g, collapse=rng.random() < 0.5))
        drawn += 1
    assert drawn >= 10
