"""Every error a .cnn source can cause: its class, its file:line:col and what it says."""

from __future__ import annotations

import pytest

from cnnc.errors import ArgumentError, CnncError, LimitError, NameErrorCnn, ShapeError, SyntaxErrorCnn
from cnnc.frontend import parse

# (name, source, error class, line, column, fragments the message must contain)
CASES = [
    ("syntax", "input 3x7x7\nconv(3, 3,, stride=1)\n", SyntaxErrorCnn, 2, 11,
     ["unexpected ','", "expected", "a number"]),
    ("syntax_eof", "input 3x7x7\nconcat {\n conv(1, 1)\n", SyntaxErrorCnn, 3, 12,
     ["unexpected end of file", "'}'"]),
    ("bad_character", "input 3x7x7\nconv(3, 3) $\n", SyntaxErrorCnn, 2, 12, ["unexpected character '$'"]),
    ("unknown_kind", "input 3x7x7\nconvv(3, 3)\n", NameErrorCnn, 2, 1,
     ["unknown layer kind or block 'convv'", "did you mean 'conv'", "layer kinds: conv"]),
    ("unknown_attr", "input 3x7x7\nconv(3, 3, strid=2)\n", NameErrorCnn, 2, 12,
     ["conv has no attribute 'strid'", "did you mean 'stride'", "filters, kernel, stride"]),
    ("missing_attr", "input 3x7x7\nconv(3)\n", ArgumentError, 2, 1,
     ["conv: missing attribute 'kernel'", "expected conv(filters, kernel, stride=1"]),
    ("too_many_positional", "input 3x7x7\nrelu(1)\n", ArgumentError, 2, 6, ["relu takes at most 0 positional"]),
    ("block_too_few", "input 3x7x7\nblock b(x, y) = conv(x, y)\nb(1)\n", ArgumentError, 3, 1,
     ["block b(x, y) takes 2 arguments, got 1", "missing y"]),
    ("block_too_many", "input 3x7x7\nblock b(x, y) = conv(x, y)\nb(1, 2, 3)\n", ArgumentError, 3, 1,
     ["block b(x, y) takes 2 arguments, got 3"]),
    ("undefined_reference", "input 3x7x7\nconv(3, 3)\nadd {\n  relu\n  @skip\n}\n", NameErrorCnn, 5, 4,
     ["undefined reference @skip"]),
    ("undefined_name", "input 3x7x7\nblock b(width) = conv(widht, 3)\nb(4)\n", NameErrorCnn, 2, 23,
     ["undefined name 'widht'", "parameters of block 'b': width", "did you mean 'width'"]),
    ("duplicate_name", "input 3x7x7\nc: conv(3, 3)\nc: relu\n", NameErrorCnn, 3, 1,
     ["duplicate name 'c'", "line 2"]),
    ("duplicate_block", "input 3x7x7\nblock b() = relu\nblock b() = relu\n", NameErrorCnn, 3, 7,
     ["block 'b' is already defined at line 2"]),
    ("recursive_block", "input 3x7x7\nblock a(n) = { relu b(n) }\nblock b(n) = a(n)\na(1)\n", NameErrorCnn, 3, 14,
     ["block 'a' calls itself (a -> b -> a)"]),
    ("concat_spatial", "input 3x8x8\nconcat {\n  conv(4, 3)\n  conv(4, 1)\n}\n", ShapeError, 2, 1,
     ["concat", "4x8x8", "4x6x6"]),
    ("add_mismatch", "input 3x8x8\nadd {\n  conv(4, 3, pad=1)\n  conv(5, 1)\n}\n", ShapeError, 2, 1,
     ["add", "5x8x8", "4x8x8"]),
    ("kernel_too_big", "input 3x7x7\nconv(8, 9)\n", ShapeError, 2, 1, ["kernel 9 is larger than its input", "7 < 9"]),
    ("kernel_too_big_padded", "input 3x7x7\nconv(8, 11, pad=1)\n", ShapeError, 2, 1,
     ["kernel 11 is larger than its padded input", "7 + 2*1 = 9 < 11"]),
    ("zero_filters", "input 3x7x7\nconv(0, 3)\n", ArgumentError, 2, 6, ["conv: filters must be positive, got 0"]),
    ("negative_stride", "input 3x7x7\nconv(4, 3, stride=-1)\n", ArgumentError, 2, 12,
     ["conv: stride must be positive, got -1"]),
    ("negative_pad", "input 3x7x7\nmaxpool(3, pad=-1)\n", ArgumentError, 2, 12, ["must not be negative"]),
    ("zero_input", "input 3x0x7\nconv(1, 3)\n", ShapeError, 1, 7, ["input sizes must be positive, got 3x0x7"]),
    ("zero_repeat", "input 3x7x7\nrepeat 0 { relu }\n", ArgumentError, 2, 8, ["repeat count must be positive"]),
    # ARCHITECTURES.md, "Shape arithmetic": 7x7 input, 3x3 filter, stride 3 -> 2.33 does not fit.
    ("strict_stride", "input 3x7x7\nconv(8, 3, stride=3, round=strict)\n", ShapeError, 2, 1,
     ["(7 - 3)/3 + 1 = 2.33"]),
    ("same_even_kernel", "input 3x8x8\nconv(8, 4, pad=same)\n", ArgumentError, 2, 12,
     ["pad=same needs an odd kernel and stride 1"]),
    ("groups", "input 3x8x8\nconv(8, 3, groups=2)\n", ShapeError, 2, 1, ["groups=2 must divide"]),
    ("bad_bool", "input 3x8x8\nconv(8, 3, bias=1)\n", ArgumentError, 2, 12, ["bias must be true or false"]),
    ("bad_round", "input 3x8x8\nmaxpool(2, round=true)\n", ArgumentError, 2, 12,
     ["round must be one of floor, ceil, strict"]),
    ("float_size", "input 3x8x8\nconv(8.5, 3)\n", ArgumentError, 2, 6, ["filters must be a whole number, got 8.5"]),
    ("no_input", "conv(1, 1)\n", SyntaxErrorCnn, 1, 1, ["expected `input CxHxW` first"]),
    ("flat_into_conv", "input 3x8x8\nflatten conv(1, 1)\n", ShapeError, 2, 9, ["conv needs a CxHxW input"]),
    ("merge_as_call", "input 3x8x8\nconcat(1)\n", SyntaxErrorCnn, 2, 7, ["unexpected '('", "expected '{'"]),
    ("huge_channels", "input 3x8x8\nconv(1000000000, 3)\n", LimitError, 2, 6, ["exceeds the limit"]),
    # found by cnnc.fuzz: int() refuses literals over 4300 digits (ValueError inside lark's VisitError)
    ("long_literal", "input 3x8x8\nconv(4, 3, pad=" + "9" * 5000 + ")\n", LimitError, 2, 16,
     ["5000 digits", "at most 30"]),
    ("long_input_size", "input 3x" + "7" * 4400 + "x8\n", LimitError, 1, 7, ["4400 digits"]),
]


@pytest.mark.parametrize("name,src,cls,line,col,fragments", CASES, ids=[c[0] for c in CASES])
def test_error(name: str, src: str, cls: type, line: int, col: int, fragments: list[str]) -> None:
    with pytest.raises(CnncError) as info:
        parse(src, source=f"{name}.cnn")
    e = info.value
    assert type(e) is cls, e.render()
    assert (e.span.file, e.span.line, e.span.column) == (f"{name}.cnn", line, col), e.render()
    for f in fragments:
        assert f in e.message, e.render()


def test_render_shows_location_line_and_caret() -> None:
    with pytest.raises(CnncError) as info:
        parse("input 3x7x7\nconv(8, 3, stride=3, round=strict)\n", source="slide.cnn")
    text = info.value.render().splitlines()
    assert text[0].startswith("slide.cnn:2:1: error: stride 3 does not fit")
    assert text[1] == "    conv(8, 3, stride=3, round=strict)"
    assert text[2] == "    ^~~~"


def test_error_inside_block_names_the_call() -> None:
    src = "input 3x8x8\nblock b(k) = conv(4, k)\nx: b(3)\ny: b(20)\n"
    with pytest.raises(ShapeError) as info:
        parse(src, source="blk.cnn")
    e = info.value
    assert (e.span.line, e.span.column) == (2, 14)
    assert any("called as y at blk.cnn:4:4" in n for n in e.notes)
    assert "note: in block 'b' called as y" in e.render()
