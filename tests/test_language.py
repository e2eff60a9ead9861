"""Every construct of the .cnn language, built into graphs."""

from __future__ import annotations

import pytest

from cnnc.frontend import parse
from cnnc.graph import output_shape, totals


def kinds(g) -> list[str]:
    return [g.nodes[n]["op"].kind for n in g.nodes]


def test_chain_names_positional_and_keyword_attributes() -> None:
    g = parse("network tiny\ninput 3x32x32\nconv(16, 3, 1, 1) relu\nconv(16, kernel=3, pad=same)\n")
    assert g.graph["name"] == "tiny"
    assert list(g.nodes) == ["input", "conv1", "relu1", "conv2"]
    assert g.nodes["conv1"]["op"]["pad"] == 1 and g.nodes["conv2"]["op"]["pad"] == 1
    assert g.nodes["conv2"]["inputs"] == ["relu1"]
    assert g.graph["output"] == "conv2" and output_shape(g) == (16, 32, 32)


def test_default_name_is_file_stem_and_spans_point_at_layers() -> None:
    g = parse("input 1x8x8\n\n   conv(2, 3)\n", source="nets/small.cnn")
    assert g.graph["name"] == "small"
    sp = g.nodes["conv1"]["span"]
    assert (sp.file, sp.line, sp.column) == ("nets/small.cnn", 3, 4)


def test_comments_semicolons_and_line_continuation() -> None:
    g = parse("# a comment\ninput 1x8x8  # trailing\nconv(2, 3) ; relu\nconv(2, \\\n 1)\n")
    assert kinds(g) == ["input", "conv", "relu", "conv"]


def test_aliases() -> None:
    g = parse("input 4x4x4\nbn globalavgpool flatten linear(3)\n")
    assert kinds(g) == ["input", "batchnorm", "gap", "flatten", "fc"]


def test_labels_and_references_make_a_residual_block() -> None:
    src = """input 8x8x8
x: identity
add {
    conv(8, 3, pad=1) bn relu conv(8, 3, pad=1) bn
    @x
}
relu
"""
    g = parse(src)
    assert g.nodes["add1"]["inputs"] == ["add1/b1/batchnorm2", "input"]
    assert output_shape(g) == (8, 8, 8)


def test_identity_branch_and_block_with_defaults_and_keywords() -> None:
    src = """input 16x8x8
block basic(c, k=3) = add {
    conv(c, k, pad=same) relu conv(c, k, pad=same)
    identity
}
r1: basic(16)
r2: basic(c=16, k=5)
"""
    g = parse(src)
    assert g.nodes["r1"]["inputs"] == ["r1/b1/conv2", "input"]
    assert g.nodes["r2/b1/conv1"]["op"]["kernel"] == 5
    assert g.nodes["r2"]["inputs"][1] == "r1"
    assert g.nodes["r2/b1/conv1"]["block"] == ("r2",)


def test_inception_block_naming_and_concat_order() -> None:
    src = """input 32x8x8
block inc(a, b) = concat {
    conv(a, 1)
    conv(b, 1) conv(b, 3, pad=1)
    maxpool(3, stride=1, pad=1)
}
m: inc(4, 6)
inc(2, 2)
"""
    g = parse(src)
    assert g.nodes["m"]["inputs"] == ["m/b1/conv1", "m/b2/conv2", "m/b3/maxpool1"]
    assert g.nodes["m"]["shape"] == (4 + 6 + 32, 8, 8)
    assert "inc1" in g and g.nodes["inc1"]["shape"] == (2 + 2 + 42, 8, 8)


def test_unlabelled_merges_get_distinct_scopes() -> None:
    g = parse("input 4x4x4\nconcat { relu\n relu }\nconcat { relu\n relu }\n")
    assert g.nodes["concat1"]["inputs"] == ["concat1/b1/relu1", "concat1/b2/relu1"]
    assert g.nodes["concat2"]["inputs"] == ["concat2/b1/relu1", "concat2/b2/relu1"]


def test_repeat_unrolls_and_suffixes_labels() -> None:
    g = parse("input 3x8x8\nrepeat 3 { c: conv(4, 3, pad=1) relu }\nadd { @c_1\n @c_3 }\n")
    assert [n for n in g.nodes if g.nodes[n]["op"].kind == "conv"] == ["c_1", "c_2", "c_3"]
    assert g.nodes["add1"]["inputs"] == ["c_1", "c_3"]


def test_repeat_count_from_block_parameter_and_expressions() -> None:
    g = parse("input 3x8x8\nblock s(w, n) = { repeat n { conv(w * 2, 3, pad=(3 - 1) / 2) relu } }\ns(8, 2)\n")
    convs = [n for n in g.nodes if g.nodes[n]["op"].kind == "conv"]
    assert convs == ["s1/conv1", "s1/conv2"]
    assert g.nodes["s1/conv1"]["shape"] == (16, 8, 8)


def test_group_spans_lines_inside_a_branch() -> None:
    g = parse("input 3x8x8\nconcat {\n  {\n    conv(2, 1)\n    relu\n  }\n  conv(3, 1)\n}\n")
    assert g.nodes["concat1"]["inputs"] == ["concat1/b1/relu1", "concat1/b2/conv1"]


def test_output_declaration_and_ceil_rounding() -> None:
    g = parse("input 3x7x7\nfeat: maxpool(2, round=ceil)\nmaxpool(2)\noutput @feat\n")
    assert g.graph["output"] == "feat" and output_shape(g) == (3, 4, 4)


def test_groups_and_bias_flag() -> None:
    g = parse("input 4x5x5\nconv(8, 3, groups=2, bias=false)\n")
    c = g.nodes["conv1"]["cost"]
    assert (c.weights, c.biases) == (8 * 2 * 9, 0)


def test_block_defined_after_use_and_argument_expression_from_caller() -> None:
    g = parse("input 3x8x8\nblock b(n) = conv(n, 1)\nb(2 + 2)\n")
    assert g.nodes["b1/conv1"]["shape"] == (4, 8, 8)


def test_parse_is_deterministic() -> None:
    src = "input 3x8x8\nconcat { conv(2, 1)\n maxpool(3, stride=1, pad=1) }\n"
    a, b = parse(src), parse(src)
    assert list(a.nodes(data="shape")) == list(b.nodes(data="shape"))
    assert totals(a) == totals(b)


@pytest.mark.parametrize("shape", ["784", "1x28x28"])
def test_flat_and_spatial_inputs(shape: str) -> None:
    g = parse(f"input {shape}\nflatten fc(10) softmax\n")
    assert output_shape(g) == (10,)
