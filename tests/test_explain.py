"""`cnnc explain` (issue 14): derivations per layer in the lecture's notation, and receptive fields.

The worked numbers are copied from the CS231n lecture on CNN architectures (as summarised in the
project's ARCHITECTURES.md): AlexNet's "(227-11)/4+1 = 55", "(11x11x3)x96 = 35K", "0 params" for
pools; VGG16's table; the naive inception module's 854M and 28x28x(128+192+96+256) = 28x28x672.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.cli import main
from cnnc.errors import ShapeError
from cnnc.explain.derive import derive
from cnnc.explain.receptive import receptive_fields
from cnnc.frontend import load, parse

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ROOT / "archs"
EXAMPLES = ROOT / "examples"


def one(path: Path, name: str):  # noqa: ANN201 - a Derivation
    (d,) = derive(load(path), [name])
    return d


def test_alexnet_conv1_worked_numbers() -> None:
    d = one(ARCHS / "alexnet.cnn", "conv1")
    # lecture: (227 - 11)/4 + 1 = 55; (11*11*3)*96 = 34,848 weights ("35K")
    assert [s.result for s in d.sizes] == [55, 55]
    assert d.sizes[0].formula() == "(227 - 11 + 2*0)/4 + 1 = 55"
    assert d.weights == 34_848 and d.biases == 96
    assert "(11*11*3)*96 + 96 = 34,944" in d.params_formula and "34,848" in d.params_formula
    assert d.macs == 55 * 55 * 96 * 11 * 11 * 3 and "(55*55*96)*(11*11*3)" in d.macs_formula
    assert d.memory == 96 * 55 * 55 and "96*55*55 = 290,400" in d.memory_formula
    assert d.as_dict()["output_size"][0]["exact"] == [55, 1]


def test_pools_have_no_parameters_and_their_size_is_worked() -> None:
    d = one(ARCHS / "alexnet.cnn", "pool1")
    # lecture: 55x55x96 -> 3x3 stride 2 -> 27x27x96, parameters: 0!
    assert [s.result for s in d.sizes] == [27, 27] and d.sizes[0].formula() == "(55 - 3 + 2*0)/2 + 1 = 27"
    assert d.weights + d.biases == 0 and d.params_formula.startswith("0: pooling has no parameters")
    assert d.macs == 0


def test_ceil_and_floor_rounding_are_named() -> None:
    d = one(ARCHS / "googlenet.cnn", "pool1")
    # Caffe rounds pooling up: (112 - 3)/2 + 1 = 55.5 -> 56
    assert d.sizes[0].formula() == "(112 - 3 + 2*0)/2 + 1 = 55.50 -> ceil (Caffe's rule) -> 56"
    s3 = one(EXAMPLES / "stride3_misfit.cnn", "s3")
    text = s3.sizes[0].formula()
    # lecture: 7x7 input, 3x3 filter, stride 3: (7-3)/3+1 = 2.33, does not fit
    assert "(7 - 3 + 2*0)/3 + 1 = 2.33 -> floor -> 2" in text and "round=strict would refuse" in text
    assert not s3.sizes[0].fits and s3.as_dict()["output_size"][0]["exact"] == [7, 3]


def test_strict_accepts_a_stride_that_fits() -> None:
    (d,) = derive(parse("input 1x7x7\nconv(1, 3, stride=2, round=strict)\n"), ["conv1"])
    assert d.sizes[0].formula() == "(7 - 3 + 2*0)/2 + 1 = 3 (round=strict: the stride fits)"


def test_strict_refuses_the_stride3_misfit() -> None:
    src = (EXAMPLES / "stride3_misfit.cnn").read_text().replace("conv(1, 3, stride=3)",
                                                                  "conv(1, 3, stride=3, round=strict)")
    with pytest.raises(ShapeError, match=r"\(7 - 3\)/3 \+ 1 = 2.33, not an integer"):
        parse(src, "misfit.cnn")


# CS231n VGG16 table: (layer, output HxWxC, memory in values, weights without biases)
VGG16_ROWS = [
    ("stage1/conv1", (224, 224, 64), 3_211_264, 1_728),
    ("stage1/conv2", (224, 224, 64), 3_211_264, 36_864),
    ("stage1/maxpool1", (112, 112, 64), 802_816, 0),
    ("stage2/conv1", (112, 112, 128), 1_605_632, 73_728),
    ("stage2/conv2", (112, 112, 128), 1_605_632, 147_456),
    ("stage2/maxpool1", (56, 56, 128), 401_408, 0),
    ("stage3/conv1", (56, 56, 256), 802_816, 294_912),
    ("stage3/conv2", (56, 56, 256), 802_816, 589_824),
    ("stage3/conv3", (56, 56, 256), 802_816, 589_824),
    ("stage3/maxpool1", (28, 28, 256), 200_704, 0),
    ("stage4/conv1", (28, 28, 512), 401_408, 1_179_648),
    ("stage4/conv2", (28, 28, 512), 401_408, 2_359_296),
    ("stage4/conv3", (28, 28, 512), 401_408, 2_359_296),
    ("stage4/maxpool1", (14, 14, 512), 100_352, 0),
    ("stage5/conv1", (14, 14, 512), 100_352, 2_359_296),
    ("stage5/conv2", (14, 14, 512), 100_352, 2_359_296),
    ("stage5/conv3", (14, 14, 512), 100_352, 2_359_296),
    ("stage5/maxpool1", (7, 7, 512), 25_088, 0),
    ("fc6", (4096,), 4_096, 102_760_448),
    ("fc7", (4096,), 4_096, 16_777_216),
    ("fc8", (1000,), 1_000, 4_096_000),
]


def test_every_vgg16_row() -> None:
    g = load(ARCHS / "vgg16.cnn")
    got = {d.name: d for d in derive(g)}
    for name, hwc, memory, weights in VGG16_ROWS:
        d = got[name]
        shape = (d.shape[1], d.shape[2], d.shape[0]) if len(d.shape) == 3 else d.shape
        assert (shape, d.memory, d.weights) == (hwc, memory, weights), name
    # the rows, with the input's 150,528, sum to 15,237,608 values (not the slide's "24M")
    assert got["input"].memory == 150_528
    assert sum(d.memory for d in got.values()) == 15_237_608
    assert "in*out = 25088*4096 = 102,760,448" in got["fc6"].macs_formula


def test_inception_merge_channels_and_cost() -> None:
    g = load(ARCHS / "inception_naive.cnn")
    ds = derive(g)
    merge = next(d for d in ds if d.op == "concat")
    # lecture: 28x28x(128+192+96+256) = 28x28x672; 854M ops
    assert [s[0] for _, s in merge.branches] == [128, 192, 96, 256]
    assert "28x28x(128 + 192 + 96 + 256) = 28x28x672" in merge.merge_formula
    assert sum(d.macs for d in ds) == 854_196_224
    assert merge.as_dict()["merge"]["branches"][3]["channels"] == 256


def sizes(path: Path, names: list[str]) -> list[int]:
    f = receptive_fields(load(path))
    return [f[n].size[0] for n in names]  # type: ignore[union-attr]


def test_receptive_fields_alexnet_by_hand() -> None:
    # r' = r + (F - 1)*j, j' = j*S: 11 (j4), pool +2*4 = 19 (j8), conv2 +4*8 = 51, pool2 67 (j16), conv3-5 +32 each,
    # pool5 195 (j32); fc6 sees the whole 227x227 input
    names = ["conv1", "pool1", "norm1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6"]
    assert sizes(ARCHS / "alexnet.cnn", names) == [11, 19, 19, 51, 67, 99, 131, 163, 195, 227]
    assert receptive_fields(load(ARCHS / "alexnet.cnn"))["pool5"].jump == (32, 32)  # type: ignore[union-attr]


def test_receptive_fields_vgg16_by_hand() -> None:
    # 3x3 stride-1 convs add 2*jump, 2x2/2 pools add 1*jump and double it; fc6 covers the input
    names = ["stage1/conv1", "stage1/conv2", "stage1/maxpool1", "stage2/conv2", "stage2/maxpool1",
             "stage3/conv3", "stage3/maxpool1", "stage4/conv3", "stage4/maxpool1", "stage5/conv3",
             "stage5/maxpool1", "fc6"]
    assert sizes(ARCHS / "vgg16.cnn", names) == [3, 5, 6, 14, 16, 40, 44, 92, 100, 196, 212, 224]


def test_three_3x3_see_what_one_7x7_sees_with_fewer_weights() -> None:
    path = EXAMPLES / "three_3x3_vs_7x7.cnn"
    assert sizes(path, ["three/conv1", "three/conv2", "three/conv3", "one"]) == [3, 5, 7, 7]
    ds = {d.name: d for d in derive(load(path))}
    c = 64  # 3*(3^2 C^2) = 27C^2 versus 7^2 C^2 = 49C^2
    assert sum(d.weights for n, d in ds.items() if n.startswith("three/")) == 27 * c * c
    assert ds["one"].weights == 49 * c * c


def test_receptive_field_through_branches_is_the_largest() -> None:
    g = parse("input 4x8x8\n"
              "a: add {\n conv(4, 5, pad=2)\n conv(4, 3, pad=1) conv(4, 3, pad=1) conv(4, 3, pad=1)\n}\n"
              "c: concat {\n conv(4, 3, stride=2, pad=1)\n maxpool(2) conv(4, 3, pad=1)\n}\n")
    f = receptive_fields(g)
    assert f["a"].size == (7, 7)  # type: ignore[union-attr] - max(5, 3+2+2)
    # branch 1: 7 + 2*1 = 9, jump 2; branch 2: pool 7 + 1 = 8 (jump 2), conv 8 + 2*2 = 12
    assert f["c"].size == (12, 12) and f["c"].jump == (2, 2)  # type: ignore[union-attr]
    # GoogLeNet's inception 3a: 27 (jump 8) in; 1x1 keeps 27, 3x3 adds 16, 5x5 adds 32: 59
    gn = receptive_fields(load(ARCHS / "googlenet.cnn"))
    assert gn["pool2"].size == (27, 27) and gn["i3a/b1/conv1"].size == (27, 27)  # type: ignore[union-attr]
    assert gn["i3a/b2/conv2"].size == (43, 43) and gn["i3a"].size == (59, 59)  # type: ignore[union-attr]


def test_a_stride_that_does_not_fit_leaves_input_unseen() -> None:
    g = parse("input 1x7x7\nconv(1, 3, stride=3)\nflatten\nfc(2)\n")
    assert receptive_fields(g)["fc1"].size == (6, 6)  # type: ignore[union-attr] - 2 windows of 3: column 7 unread


def test_cli_explain_text_json_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(ARCHS / "alexnet.cnn"), "conv1"]) == 0
    out = capsys.readouterr().out
    assert "(227 - 11 + 2*0)/4 + 1 = 55" in out and "receptive field  11x11 on the input, jump 4" in out
    assert "pool1" not in out
    assert main(["explain", str(ARCHS / "googlenet.cnn"), "i3a", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in doc["layers"]]
    assert names[0] == "i3a/b1/conv1" and names[-1] == "i3a" and len(names) == 14
    assert doc["layers"][-1]["merge"]["formula"].endswith("= 28x28x256 (HxWxC)")
    assert main(["explain", str(ARCHS / "alexnet.cnn"), "conv9"]) == 2
    assert "did you mean 'conv5'" in capsys.readouterr().err
    assert main(["explain", str(EXAMPLES / "three_3x3_vs_7x7.cnn"), "three", "one"]) == 0
    assert "total of three (6 layers): 110,592 (111k) weights" in capsys.readouterr().out


def test_inspect_shows_receptive_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(ARCHS / "alexnet.cnn"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    pool5 = next(r for r in doc["layers"] if r["name"] == "pool5")
    # start: pads 2, 1, 1, 1 at jumps 8, 16, 16, 16 reach 16 + 3*16 = 64 pixels into the padding
    assert pool5["receptive_field"] == {"size": [195, 195], "jump": [32, 32], "start": [-64, -64]}
    assert main(["inspect", str(ARCHS / "alexnet.cnn")]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("pool5 "))
    assert row.split()[-1] == "195x195/32"
    fc6 = next(line for line in out.splitlines() if line.startswith("fc6 "))
    assert fc6.split()[-1] == "227x227"  # a flat vector: no jump


def _window_layers() -> st.SearchStrategy[list[tuple[str, int, int, int]]]:
    layer = st.tuples(st.sampled_from(["conv", "maxpool", "avgpool"]), st.integers(1, 5), st.integers(1, 3),
                      st.integers(0, 2))
    return st.lists(layer, min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(layers=_window_layers(), n=st.integers(8, 40))
def test_receptive_field_matches_the_windows_traced_back(layers: list[tuple[str, int, int, int]], n: int) -> None:
    """The closed form (size, jump, start) against the input interval each output element reads,
    traced back layer by layer: position i of a window layer reads [i*S - P, i*S - P + F)."""
    src = [f"input 1x{n}x{n}"]
    kept: list[tuple[int, int, int]] = []
    size = n
    for kind, k, s, p in layers:
        p = min(p, k // 2) if kind != "conv" else p  # pooling pads at most half the window
        if size + 2 * p < k:
            break
        src.append(f"{kind}({'1, ' if kind == 'conv' else ''}{k}, stride={s}, pad={p})")
        kept.append((k, s, p))
        size = (size + 2 * p - k) // s + 1
    if not kept:
        return
    g = parse("\n".join(src) + "\n")
    last = list(g.nodes)[-1]
    f = receptive_fields(g)[last]
    assert f is not None
    for i in range(g.nodes[last]["shape"][1]):
        lo, hi = i, i + 1  # [lo, hi) at the last layer, traced back to the input
        for k, s, p in reversed(kept):
            lo, hi = lo * s - p, (hi - 1) * s - p + k
        assert (lo, hi) == (f.start[0] + i * f.jump[0], f.start[0] + i * f.jump[0] + f.size[0])


def test_receptive_fields_survive_the_residual_fusion() -> None:
    """-O1 fuses a residual add into a conv (a second input): the fields of what remains are the source's."""
    from cnnc.passes.manager import run_pipeline

    g0 = load(ARCHS / "resnet18.cnn")
    g1 = run_pipeline(g0, level=1)
    assert any(len(g1.nodes[n]["inputs"]) == 2 and g1.nodes[n]["op"].kind == "conv" for n in g1.nodes)
    f0, f1 = receptive_fields(g0), receptive_fields(g1)
    assert f1[g1.graph["output"]] == f0[g0.graph["output"]]
    plain = [n for n in g1.nodes if n in g0.nodes and g1.nodes[n]["op"].kind == "conv"
             and len(g1.nodes[n]["inputs"]) == 1]
    assert plain and all(f1[n] == f0[n] for n in plain)
    for n in g1.nodes:  # a conv that took in its add stands for the add: the add's field
        if g1.nodes[n]["op"].kind == "conv" and len(g1.nodes[n]["inputs"]) == 2:
            add = n
            while g0.nodes[add]["op"].kind != "add":  # the source's conv -> batchnorm -> add
                (add,) = g0.successors(add)
            assert f1[n] == f0[add]
