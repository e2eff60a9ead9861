"""The numbers of the shipped networks, computed from archs/*.cnn.

Every expected value is copied from ../shared/ARCHITECTURES.md (the papers, Caffe's model zoo,
CS231n); the section is named beside each.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import pytest

from cnnc.frontend import load
from cnnc.graph import output_shape, totals

ARCHS = Path(__file__).resolve().parent.parent / "archs"

# name: (params, MACs, weights or None) -- ARCHITECTURES.md totals
TOTALS = {
    "alexnet": (60_965_224, 724_406_816, None),  # AlexNet: grouped (Caffe bvlc_alexnet)
    "zfnet": (62_357_608, None, None),  # ZFNet: "With 384/384/256: 62,357,608 params"
    "vgg16": (138_357_544, 15_470_264_320, 138_344_128),  # VGG
    "vgg19": (143_667_240, 19_632_062_464, None),  # VGG19 (config E)
    "googlenet": (6_998_552, 1_582_671_872, 6_990_272),  # GoogLeNet totals
    "nin": (7_595_176, 1_100_188_800, None),  # Network in Network totals
    "inception_naive": (None, 854_196_224, None),  # inception lesson 1
    "inception_reduced": (None, 271_351_808, None),  # inception lesson 2
    "conv5x5": (None, 120_422_400, None),  # inception lesson 3
    "conv5x5_bottleneck": (None, 12_443_648, None),  # inception lesson 3
    # issue 10, item 5 (torchvision's resnet18, resnet50 and a width-1.0 MobileNet v1 at 224)
    "resnet18": (11_689_512, 1_814_073_344, None),
    "resnet50": (25_557_032, 4_089_184_256, None),
    "mobilenet_v1": (4_231_976, 568_740_352, None),
}


def net(name: str):
    return load(ARCHS / f"{name}.cnn")


def test_every_arch_is_covered() -> None:
    shipped = {p.stem for p in ARCHS.glob("*.cnn")}
    assert shipped == set(TOTALS) | {"lenet5"}


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_totals(name: str) -> None:
    params, macs, weights = TOTALS[name]
    t = totals(net(name))
    if params is not None:
        assert t.params == params
    if macs is not None:
        assert t.macs == macs
    if weights is not None:
        assert t.weights == weights


def test_vgg16_rows_and_activation_memory() -> None:
    g = net("vgg16")
    # VGG section: per-layer rows (memory = output elements; params = weights)
    assert g.nodes["input"]["cost"].activations == 150_528
    c1, c2 = g.nodes["stage1/conv1"], g.nodes["stage1/conv2"]
    assert c1["shape"] == (64, 224, 224) and c1["cost"].activations == 3_211_264 and c1["cost"].weights == 1_728
    assert c2["cost"].activations == 3_211_264 and c2["cost"].weights == 36_864
    assert g.nodes["stage1/maxpool1"]["cost"].activations == 802_816
    pools = [g.nodes[f"stage{i}/maxpool1"]["shape"] for i in range(1, 6)]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert g.nodes["fc6"]["cost"].weights == 102_760_448
    assert g.nodes["fc7"]["cost"].weights == 16_777_216
    assert g.nodes["fc8"]["cost"].weights == 4_096_000
    # "sums to 15,237,608 values with the input, about 61 MB in float32"
    assert totals(g).activations == 15_237_608


def test_alexnet_layout() -> None:
    g = net("alexnet")
    # AlexNet section: CONV1 [55x55x96], 34,848 weights; the slide's order (NORM after MAX POOL)
    assert g.nodes["conv1"]["shape"] == (96, 55, 55)
    assert g.nodes["conv1"]["cost"].weights == 34_848
    order = [n for n in g.nodes if g.nodes[n]["op"].kind in ("conv", "maxpool", "lrn", "fc")]
    assert order == ["conv1", "pool1", "norm1", "conv2", "pool2", "norm2", "conv3", "conv4", "conv5", "pool5",
                     "fc6", "fc7", "fc8"]
    shapes = {n: g.nodes[n]["shape"] for n in order}
    assert shapes["pool1"] == (96, 27, 27) and shapes["conv2"] == (256, 27, 27)
    assert shapes["pool2"] == (256, 13, 13) and shapes["pool5"] == (256, 6, 6)
    assert [g.nodes[c]["op"]["groups"] for c in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]


def test_alexnet_ungrouped_variant() -> None:
    # AlexNet section: ungrouped "simplified" 62,378,344 params, 1,135,256,096 MACs
    from cnnc.frontend import parse

    text = (ARCHS / "alexnet.cnn").read_text().replace(", groups=2", "")
    t = totals(parse(text, "alexnet_ungrouped.cnn"))
    assert (t.params, t.macs) == (62_378_344, 1_135_256_096)


def test_googlenet_shapes_and_inception_3a() -> None:
    g = net("googlenet")
    # GoogLeNet: 224 -> 112 -> 56 -> 28 -> 14 -> 7 with ceil pooling
    sizes = [g.nodes[n]["shape"][1] for n in ("conv1", "pool1", "pool2", "pool3", "pool4")]
    assert sizes == [112, 56, 28, 14, 7]
    depth = {m: g.nodes[m]["shape"] for m in ("i3a", "i3b", "i4a", "i4d", "i4e", "i5a", "i5b")}
    assert depth["i3a"] == (256, 28, 28) and depth["i3b"] == (480, 28, 28) and depth["i4d"] == (528, 14, 14)
    assert depth["i4e"] == (832, 14, 14) and depth["i5b"] == (1024, 7, 7)
    # Inception 3a alone: 163,328 weights, 128,049,152 MACs
    members = [n for n in g.nodes if n.startswith("i3a/")]
    assert sum(g.nodes[n]["cost"].weights for n in members) == 163_328
    assert sum(g.nodes[n]["cost"].macs for n in members) == 128_049_152
    assert output_shape(g) == (1000,)


def test_googlenet_floor_pooling_would_shrink() -> None:
    # "floor pooling would give 55, 27, 13, 6"
    from cnnc.frontend import parse

    text = (ARCHS / "googlenet.cnn").read_text().replace("round=ceil", "round=floor").replace("avgpool(7", "avgpool(6")
    g = parse(text, "floor.cnn")
    assert [g.nodes[n]["shape"][1] for n in ("pool1", "pool2", "pool3", "pool4")] == [55, 27, 13, 6]


def test_nin_and_zfnet_sizes() -> None:
    g = net("nin")  # NiN: 224 -> 54 -> 27 -> 13 -> 6 -> 1
    assert [g.nodes[n]["shape"][1] for n in ("mlp1/conv1", "pool1", "pool2", "pool3", "gap1")] == [54, 27, 13, 6, 1]
    z = net("zfnet")  # ZFNet Figure 3
    assert [z.nodes[n]["shape"] for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")] == [
        (96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13), (256, 13, 13), (256, 6, 6)]


def test_lenet5_layers() -> None:
    g = net("lenet5")
    # LeNet-5 (modern variant): C1 156, C3 2,416, C5 48,120, F6 10,164
    p = {n: g.nodes[n]["cost"].params for n in ("c1", "c3", "c5", "f6")}
    assert p == {"c1": 156, "c3": 2_416, "c5": 48_120, "f6": 10_164}
    assert [g.nodes[n]["shape"] for n in ("c1", "s2", "c3", "s4")] == [(6, 28, 28), (6, 14, 14), (16, 10, 10),
                                                                        (16, 5, 5)]
    assert output_shape(g) == (10,)


def test_inception_lessons_depth() -> None:
    # Lesson 1: 28x28x672 (naive); lesson 2: 28x28x480 (reduced)
    assert output_shape(net("inception_naive")) == (672, 28, 28)
    assert output_shape(net("inception_reduced")) == (480, 28, 28)
    g = net("conv5x5_bottleneck")
    assert g.nodes["reduce"]["cost"].macs == 2_408_448  # 28x28x16x192
    assert totals(g).macs - 2_408_448 == 10_035_200  # (28x28x32) x (5x5x16)


def test_activation_total_counts_input_once() -> None:
    g = net("lenet5")
    t = totals(g)
    assert t.activations == prod(g.nodes["input"]["shape"]) + sum(
        g.nodes[n]["cost"].activations for n in g.nodes if n != "input")


def test_resnet_and_mobilenet_layouts() -> None:
    # torchvision: 224 -> 112 (conv1) -> 56 (maxpool) -> 28 -> 14 -> 7; ResNet v1.5 strides the 3x3 of the bottleneck
    r50 = net("resnet50")
    assert r50.nodes["layer2_1/b1/conv2"]["op"]["stride"] == 2 and r50.nodes["layer2_1/b1/conv1"]["op"]["stride"] == 1
    assert r50.nodes["layer4_b_2"]["shape"] == (2048, 7, 7)
    assert not any(r50.nodes[n]["op"].kind == "conv" and r50.nodes[n]["op"]["bias"] for n in r50.nodes)
    r18 = net("resnet18")
    assert [r18.nodes[n]["shape"] for n in ("conv1", "pool1", "layer2_1", "layer3_1", "layer4_2")] == [
        (64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    mb = net("mobilenet_v1")
    depthwise = [n for n in mb.nodes if mb.nodes[n]["op"].kind == "conv" and mb.nodes[n]["op"]["groups"] > 1]
    assert len(depthwise) == 13
    assert all(mb.nodes[n]["op"]["groups"] == mb.nodes[n]["shape"][0] for n in depthwise)
    assert mb.nodes["dw13/conv2"]["shape"] == (1024, 7, 7)
