"""Resource limits (issue 7): absurd networks fail fast with a LimitError naming the limit, before
any allocation or deep recursion, and every limit can be raised (module attribute or env var)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnc import limits
from cnnc.cli import main
from cnnc.errors import CnncError, LimitError, NameErrorCnn
from cnnc.frontend import load, parse

HANG_GUARD = 5.0  # seconds: only a guard against hangs, each case takes well under a second


def fails_fast(src: str, cls: type[CnncError] = LimitError, *fragments: str) -> CnncError:
    t0 = time.perf_counter()
    with pytest.raises(CnncError) as info:
        parse(src, source="limits.cnn")
    elapsed = time.perf_counter() - t0
    e = info.value
    assert type(e) is cls, e.render()
    for f in fragments:
        assert f in e.render(), e.render()
    assert elapsed < HANG_GUARD, f"{elapsed:.1f} s"
    return e


def test_billion_channel_conv_fails_on_the_size_limit() -> None:
    e = fails_fast("input 3x8x8\nconv(1000000000, 3)\n", LimitError, "MAX_DIM", "1000000000")
    assert (e.span.line, e.span.column) == (2, 6)


def test_raising_a_limit_moves_the_error_to_the_next_limit_and_nothing_is_allocated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    src = "input 3x8x8\nconv(1000000000, 3)\n"
    monkeypatch.setattr(limits, "MAX_DIM", 10**10)
    fails_fast(src, LimitError, "MAX_TENSOR")  # 1e9 x 6 x 6 outputs
    monkeypatch.setattr(limits, "MAX_TENSOR", 10**12)
    fails_fast(src, LimitError, "MAX_PARAMS", "27000000000 weights")
    monkeypatch.setattr(limits, "MAX_PARAMS", 10**12)
    t0 = time.perf_counter()
    g = parse(src)  # shapes and costs only: no weight is ever allocated
    assert time.perf_counter() - t0 < HANG_GUARD
    assert g.nodes["conv1"]["shape"] == (10**9, 6, 6)
    assert g.nodes["conv1"]["cost"].weights == 10**9 * 3 * 3 * 3


def test_million_deep_repeat() -> None:
    fails_fast("input 3x8x8\nrepeat 1000000 { relu }\n", LimitError, "repeat 1000000", "MAX_REPEAT")


def test_nested_repeats_are_refused_before_expansion() -> None:
    e = fails_fast("input 3x8x8\nrepeat 1000 { repeat 1000 { relu } }\n", LimitError, "MAX_NODES",
                   "1000001 layers")
    assert e.span.line == 2


def test_repeat_limit_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_REPEAT", 3)
    fails_fast("input 3x8x8\nrepeat 4 { relu }\n", LimitError, "exceeds the limit 3")
    assert len(parse("input 3x8x8\nrepeat 3 { relu }\n")) == 4


def test_node_limit_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_NODES", 50)
    fails_fast("input 3x8x8\n" + "relu " * 60 + "\n", LimitError, "more than 50 layers")
    fails_fast("input 3x8x8\nrepeat 30 { relu relu }\n", LimitError, "61 layers")
    assert len(parse("input 3x8x8\nrepeat 20 { relu relu }\n")) == 41


@pytest.mark.parametrize("depth", [100, 5000, 30000])
def test_deeply_nested_groups(depth: int) -> None:
    e = fails_fast("input 3x8x8\n" + "{ " * depth + "relu" + " }" * depth + "\n", LimitError,
                   "nested deeper than 64", "MAX_DEPTH")
    assert (e.span.line, e.span.column) == (2, 2 * 64 + 1)  # the 65th brace


@pytest.mark.parametrize("expr", ["1+" * 5000 + "1", "-" * 5000 + "1", "(1+" * 5000 + "1" + ")" * 5000],
                         ids=["sum", "minus", "parenthesised"])
def test_deeply_nested_expressions(expr: str) -> None:
    fails_fast(f"input 3x8x8\nconv({expr}, 1)\n", LimitError, "nests too deeply")


def test_deeply_nested_merges_and_repeats() -> None:
    fails_fast("input 3x8x8\n" + "concat { " * 200 + "relu" + " }" * 200 + "\n", LimitError, "MAX_DEPTH")
    fails_fast("input 3x8x8\n" + "repeat 1 { " * 200 + "relu" + " }" * 200 + "\n", LimitError, "MAX_DEPTH")


def test_nesting_limit_override(monkeypatch: pytest.MonkeyPatch) -> None:
    src = "input 3x8x8\n" + "{ " * 100 + "relu" + " }" * 100 + "\n"
    with pytest.raises(LimitError, match="MAX_DEPTH"):
        parse(src)
    monkeypatch.setattr(limits, "MAX_DEPTH", 150)
    assert len(parse(src)) == 2


def test_thousands_of_nested_block_calls() -> None:
    src = "input 3x8x8\nblock b0() = relu\n" + "".join(f"block b{k}() = b{k - 1}\n" for k in range(1, 3001))
    fails_fast(src + "b3000\n", LimitError, "nesting deeper than 64", "MAX_DEPTH")


def test_exponential_block_is_refused_before_expansion() -> None:
    defs = "".join(f"block b{k}() = b{k - 1} b{k - 1}\n" for k in range(1, 41))
    e = fails_fast("input 3x8x8\nblock b0() = relu\n" + defs + "b40\n", LimitError, "MAX_NODES",
                   f"would expand to {2**40} layers")
    assert e.span.line == 43


def test_exponential_block_through_parameters_and_merges() -> None:
    defs = "".join(f"block b{k}(n) = concat {{\n b{k - 1}(n)\n b{k - 1}(n + 1)\n}}\n" for k in range(1, 31))
    fails_fast("input 3x8x8\nblock b0(n) = repeat n { relu }\n" + defs + "b30(1)\n", LimitError, "MAX_NODES")


@pytest.mark.parametrize("src", [
    "input 3x8x8\nblock a() = a\na\n",
    "input 3x8x8\nblock a(n) = { relu b(n) }\nblock b(n) = a(n + 1)\na(1)\n",
    "input 3x8x8\nblock a(n) = repeat 2 { concat { a(n) \n relu } }\na(1)\n",
])
def test_recursive_blocks(src: str) -> None:
    fails_fast(src, NameErrorCnn, "calls itself", "cannot be recursive")


def test_huge_input() -> None:
    fails_fast("input 3x100000x100000\n", LimitError, "MAX_TENSOR")
    fails_fast("input 3x2000000x1\n", LimitError, "MAX_DIM")
    fails_fast("input 3x" + "9" * 5000 + "x1\n", LimitError, "5000 digits")


def test_huge_fully_connected_layer() -> None:
    fails_fast("input 3x224x224\nfc(1000000)\n", LimitError, "MAX_PARAMS")


def test_source_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.cnn"
    big.write_bytes(b"input 3x8x8\n" + b"#" * limits.MAX_SOURCE)  # the default limit, plus a line
    t0 = time.perf_counter()
    with pytest.raises(LimitError, match="MAX_SOURCE"):
        load(big)
    assert time.perf_counter() - t0 < HANG_GUARD
    small = tmp_path / "small.cnn"
    small.write_text("input 3x8x8\n" + "# a comment\n" * 100 + "relu\n", encoding="utf-8")
    monkeypatch.setattr(limits, "MAX_SOURCE", 1000)
    with pytest.raises(LimitError, match="limit of 1000 bytes"):
        load(small)
    with pytest.raises(LimitError, match="MAX_SOURCE"):
        parse(small.read_text(encoding="utf-8"))
    monkeypatch.setattr(limits, "MAX_SOURCE", 2000)
    assert len(load(small)) == 2


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_file_is_not_read_whole() -> None:
    t0 = time.perf_counter()
    with pytest.raises(LimitError, match="MAX_SOURCE"):
        load("/dev/zero")
    assert time.perf_counter() - t0 < HANG_GUARD


def test_token_limit_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200,000 layers in 1.2 MB: under the size limit, but parsing alone would take many seconds
    fails_fast("input 3x8x8\n" + "relu;" * 200_000 + "\n", LimitError, "MAX_TOKENS")
    monkeypatch.setattr(limits, "MAX_TOKENS", 10)
    fails_fast("input 3x8x8\nconv(4, 3) relu relu relu\n", LimitError, "more than 10 tokens")
    assert len(parse("input 3x8x8  # comments are not tokens, however long\nrelu\n")) == 2


def _limit_in_subprocess(env: dict[str, str], expr: str) -> str:
    code = f"import cnnc.limits as L; print({expr})"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_environment_overrides() -> None:
    assert _limit_in_subprocess({"CNNC_MAX_REPEAT": "5", "CNNC_MAX_NODES": "77", "CNNC_MAX_TOKENS": "9"},
                                "L.MAX_REPEAT, L.MAX_NODES, L.MAX_TOKENS") == "5 77 9"
    # a malformed value keeps the documented default instead of crashing at import
    assert _limit_in_subprocess({"CNNC_MAX_DEPTH": "lots"}, "L.MAX_DEPTH") == "64"


def test_environment_override_reaches_the_cli(tmp_path: Path) -> None:
    f = tmp_path / "rep.cnn"
    f.write_text("input 3x8x8\nrepeat 6 { relu }\n", encoding="utf-8")
    run = [sys.executable, "-m", "cnnc", "inspect", str(f), "--format", "json"]
    low = subprocess.run(run, env={**os.environ, "CNNC_MAX_REPEAT": "5"}, capture_output=True, text=True)
    assert low.returncode == 2, low.stderr
    assert "repeat 6 exceeds the limit 5" in low.stderr and "CNNC_MAX_REPEAT" in low.stderr
    assert "Traceback" not in low.stderr
    ok = subprocess.run(run, env={**os.environ, "CNNC_MAX_REPEAT": "6"}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_cli_reports_a_limit_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "wide.cnn"
    f.write_text("input 3x8x8\nconv(1000000000, 3)\n", encoding="utf-8")
    assert main(["inspect", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:2:6: error:" in err and "MAX_DIM" in err
