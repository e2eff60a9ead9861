"""`expect` claims and `cnnc check` (issue 14): holding, failing, rounding, causes, errors, --strict.

Published numbers are copied from the CS231n lecture and the papers (as summarised in the
project's ARCHITECTURES.md); the two lecture slips are VGG16's "TOTAL memory 24M" (its rows sum
to 15,237,608 values) and the bottleneck module's "358M ops" (its terms add to 271,351,808).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.codegen import generate
from cnnc.errors import ArgumentError, CnncError, LimitError, NameErrorCnn, SyntaxErrorCnn
from cnnc.explain.claims import check
from cnnc.frontend import load, parse
from cnnc.graph import param_specs, totals

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ROOT / "archs"
EXAMPLES = ROOT / "examples"
VGG = (ARCHS / "vgg16.cnn").read_text()
BODY = re.sub(r"(?m)^expect .*\n", "", VGG)  # VGG16 without its claims


def results(claims: str, base: str = BODY, source: str = "net.cnn") -> list:  # noqa: ANN401
    return check(parse(base + claims, source))


@pytest.mark.parametrize(("claim", "holds"), [
    ("expect params = 138M", True),             # 138,357,544: within half a million
    ("expect params = 138.4M", True),           # within 0.05M
    ("expect params = 138.3M", False),          # 0.0575M off
    ("expect params = 138,357,544", True),      # exact
    ("expect params = 138357545", False),       # exact means exact
    ("expect weights = 1728 @stage1/conv1", True),
    ("expect weights = 1.73k @stage1/conv1", True),
    ("expect params = 1,728 @stage1/conv1", False),  # 1,792 with the biases
    ("expect params = 2K @stage1/conv1", True),
    ("expect macs = 15.5G", True),
    ("expect flops = 30.9G", True),
    ("expect memory = 150,528 @input", True),
    ("expect output = 112x112x64 @stage1", True),  # a block: its last layer
    ("expect output = 7x7x512 @stage5/maxpool1", True),
    ("expect output = 4096 @fc6", True),
    ("expect rf = 5x5 @stage1/conv2", True),
    ("expect rf = 7 @stage1/conv2", False),
    ("expect biases = 13,416", True),
    ("expect memory = 61MB", True),             # 15,237,608 float32 values = 60,950,432 bytes
    ("expect memory = 60,950,432B", True),
    ("expect memory = 96MB", False),            # the slide's "24M * 4 bytes ~= 96MB"
])
def test_rounding_rules(claim: str, holds: bool) -> None:
    (r,) = results(claim + "\n")
    assert r.holds is holds, (claim, r.computed)


def test_a_block_path_sums_its_layers() -> None:
    (r,) = results("expect weights = 38,592 @stage1\n")  # 1,728 + 36,864
    assert r.holds and r.computed == 38_592


def test_the_two_lecture_slips_fail_with_their_causes() -> None:
    (mem,) = results("expect memory = 24M\n")
    assert not mem.holds and mem.computed == 15_237_608 and mem.causes == []
    assert "the input counted or not" in mem.checked
    reduced = (ARCHS / "inception_reduced.cnn").read_text()
    (ops,) = check(parse(re.sub(r"(?m)^expect .*\n", "", reduced) + "expect macs = 358M\n"))
    assert not ops.holds and ops.computed == 271_351_808
    # 358M = 271M + the 3x3 conv's 86,704,128 counted twice
    assert ops.causes == ["one layer counted twice: 271,351,808 + 86,704,128 (concat1/b2/conv2) = "
                          "358,055,936 (358M)"]


def test_causes_biases_input_flops_rounding_and_layout() -> None:
    rs = results("expect params = 138,344,128\nexpect weights = 138,357,544\nexpect memory = 15,087,080\n"
                 "expect macs = 30.9G\nexpect output = 64x112x112 @stage1/maxpool1\n")
    assert [r.holds for r in rs] == [False] * 5
    assert rs[0].causes[0].startswith("biases not counted")
    assert rs[1].causes[0].startswith("biases counted")
    assert rs[2].causes == ["the input not counted: 15,237,608 - 150,528 (input) = 15,087,080 (15.1M)"]
    assert rs[3].causes[0].startswith("FLOPs counted as MACs")
    assert rs[4].causes[0].startswith("written channels first")
    gn = check(parse((ARCHS / "googlenet.cnn").read_text() + "expect output = 55x55x64 @pool1\n"
                     "expect output = 27x27x256 @i3a\n"))
    # floor pooling would give 55, 27, 13, 6 (ARCHITECTURES.md, shape arithmetic)
    pool1, i3a = gn[-2], gn[-1]
    assert pool1.causes == ["floor instead of ceil rounding in pool1 gives 55x55x64"]
    assert i3a.causes == ["floor instead of ceil rounding in pooling (pool1, pool2) gives 27x27x256"]


def test_every_archs_claim_holds_but_the_two_slips() -> None:
    failing = set()
    count = 0
    for path in sorted(ARCHS.glob("*.cnn")) + sorted(EXAMPLES.glob("*.cnn")):
        for r in check(load(path)):
            count += 1
            if not r.holds:
                failing.add((path.name, r.claim.statement()))
    assert failing == {("vgg16.cnn", "expect memory = 24M"), ("vgg16.cnn", "expect memory = 96MB"),
                       ("inception_reduced.cnn", "expect macs = 358M")}
    assert count > 150


@pytest.mark.parametrize("name", ["vgg16.cnn", "inception_reduced.cnn", "googlenet.cnn"])
def test_claims_change_nothing_else(name: str) -> None:
    text = (ARCHS / name).read_text()
    bare = re.sub(r"(?m)^expect .*\n", "", text)
    assert bare != text
    a, b = parse(text, f"archs/{name}"), parse(bare, f"archs/{name}")
    assert totals(a) == totals(b) and param_specs(a) == param_specs(b)
    assert list(a.nodes) == list(b.nodes) and not b.graph["claims"]
    # the claims stand after the layers: the generated code is the same bytes, line numbers included
    assert generate(a, "cpu") == generate(b, "cpu")


def test_a_claim_mid_file_only_shifts_line_numbers() -> None:
    lines = BODY.split("\n")
    i = next(k for k, ln in enumerate(lines) if ln.startswith("stage1:"))
    moved = "\n".join(lines[:i] + ["expect params = 138M"] + lines[i:])
    a, b = parse(moved, "v.cnn"), parse(BODY, "v.cnn")
    assert totals(a) == totals(b) and check(a)[0].holds
    strip = re.compile(r"\.cnn:\d+|line \d+")
    assert strip.sub("", generate(a, "cpu")) == strip.sub("", generate(b, "cpu"))


@pytest.mark.parametrize(("claim", "error", "where", "message"), [
    ("expect params = 1 @stage9/conv1", NameErrorCnn, "net.cnn:{line}:20", "unknown layer or block @stage9/conv1"),
    ("expect param = 1", NameErrorCnn, "net.cnn:{line}:8", "did you mean 'params'"),
    ("expect params = 55x55x96", ArgumentError, "net.cnn:{line}:17", "needs a count"),
    ("expect output = 55x55 @fc6", ArgumentError, "net.cnn:{line}:17", "HxWxC or F"),
    ("expect rf = 3x3x3 @fc6", ArgumentError, "net.cnn:{line}:13", "HxW or one size"),
    ("expect params = " + "9" * 40, LimitError, "net.cnn:{line}:17", "at most 30"),
    ("expect params = 138MB", ArgumentError, "net.cnn:{line}:17", "only memory may be given in bytes"),
    ("expect params = 34,84", ArgumentError, "net.cnn:{line}:17", "needs a count"),  # commas group thousands
    ("expect params = -1", SyntaxErrorCnn, "net.cnn:{line}:17", "expected a value like 138M"),
    ("expect params 138M", SyntaxErrorCnn, "net.cnn:{line}:15", "expected '='"),
])
def test_bad_claims_are_source_errors(claim: str, error: type[CnncError], where: str, message: str) -> None:
    line = BODY.count("\n") + 1
    with pytest.raises(error) as e:
        parse(BODY + claim + "\n", "net.cnn")
    text = e.value.render()
    assert text.startswith(where.format(line=line) + ": error:"), text
    assert message in text


def test_rf_needs_an_image_input() -> None:
    with pytest.raises(ArgumentError, match=r"flat vector, not an image") as e:
        parse("input 784\nfc(10)\nexpect rf = 3\n", "flat.cnn")
    assert str(e.value.span) == "flat.cnn:3:8"


def test_cli_check_warns_and_strict_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", str(ARCHS / "vgg16.cnn")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"vgg16\.cnn:\d+:8: warning: expect memory = 24M does not hold: computed 15,237,608", out)
    assert out.endswith("69 claims: 67 hold, 2 fail\n")
    assert main(["check", str(ARCHS / "vgg16.cnn"), "--strict"]) == 2
    assert ": error: expect memory = 24M" in capsys.readouterr().out
    assert main(["check", str(EXAMPLES / "stride3_misfit.cnn"), "--strict"]) == 0
    capsys.readouterr()
    assert main(["check", str(ARCHS / "inception_reduced.cnn"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["hold"], doc["fail"]) == (8, 1)
    bad = next(c for c in doc["claims"] if not c["holds"])
    assert bad["value"] == "358M" and bad["computed"] == 271_351_808 and "counted twice" in bad["causes"][0]
    plain = tmp_path / "plain.cnn"
    plain.write_text("input 3x8x8\nconv(4, 3)\n")
    assert main(["check", str(plain), "--strict"]) == 0
    assert "no claims" in capsys.readouterr().out


def test_inspect_reports_claims_checked_before_the_passes(capsys: pytest.CaptureFixture[str]) -> None:
    # -O1 fuses and merges layers (hfuse renames the 1x1 convs); the claims are about the source
    assert main(["inspect", str(ARCHS / "inception_reduced.cnn"), "-O1", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["claims"]) == 9 and sum(c["holds"] for c in doc["claims"]) == 8
    assert main(["inspect", str(ARCHS / "inception_reduced.cnn")]) == 0
    out = capsys.readouterr().out
    assert "claims:\n" in out and "cause: one layer counted twice" in out


def test_expect_is_a_keyword_the_fuzzer_knows() -> None:
    from cnnc import fuzz

    assert "expect" in fuzz.IDENTS
    with pytest.raises(SyntaxErrorCnn):
        parse("input 3x8x8\nexpect: conv(4, 3)\n")


README = (ROOT / "README.md").read_text(encoding="utf-8")


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_readme_shows_real_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the README runs from the repository root
    blocks = re.findall(r"```text\n\$ (cnnc [^\n]*)\n(.*?)```", README, flags=re.S)
    assert {cmd for cmd, _ in blocks} >= {"cnnc explain archs/alexnet.cnn conv1", "cnnc check archs/vgg16.cnn"}
    for cmd, shown in blocks:
        out = _cli(capsys, cmd.split()[1:])
        if "\n...\n" not in shown:
            assert shown == out, cmd
            continue
        head, tail = shown.split("...\n")
        assert out.startswith(head) and out.endswith(tail), cmd  # the middle rows are elided
    slip = re.search(r"```text\n(archs/inception_reduced\.cnn:.*?)```", README, flags=re.S)
    assert slip is not None
    assert slip.group(1) in _cli(capsys, ["check", "archs/inception_reduced.cnn"])
