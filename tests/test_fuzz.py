"""Fuzzing the front end (issue 7): mutated networks parse, analyse and report, or raise a CnncError.

The bounded CI version of ``python -m cnnc.fuzz``: hypothesis picks a shipped network and a
list of mutations (each with its own seed) and shrinks a failure to the smallest list.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc import fuzz
from cnnc.errors import GraphError, ShapeError, Span

SEEDS = fuzz.corpus()
steps = st.lists(st.tuples(st.sampled_from(sorted(fuzz.MUTATIONS)), st.integers(0, 2**32 - 1)),
                 min_size=1, max_size=3)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_clean(text: str, **kw: bool) -> None:
    out = fuzz.run_case(text, timeout=10.0, **kw)
    assert out.kind in ("ok", "error"), f"{out.error} on input:\n{text[:2000]}\n{out.trace}"


@FAST
@given(arch=st.sampled_from(sorted(SEEDS)), steps=steps)
def test_mutated_networks_never_crash_inspect(arch: str, steps: list[tuple[str, int]]) -> None:
    _assert_clean(fuzz.mutate(SEEDS[arch], steps))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(sorted(SEEDS)), steps=steps)
def test_mutated_networks_never_crash_passes_or_codegen(arch: str, steps: list[tuple[str, int]]) -> None:
    _assert_clean(fuzz.mutate(SEEDS[arch], steps), codegen=True)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("input3x8 conv(4,3)relu{}concat@:=;\n#-.e0")), max_size=80))
def test_random_text_never_crashes(text: str) -> None:
    _assert_clean(text)


def test_every_shipped_network_passes_the_checks() -> None:
    for name, text in SEEDS.items():
        assert fuzz.run_case(text, codegen=True).kind == "ok", name


def test_mutations_are_deterministic_and_change_the_text() -> None:
    text = SEEDS["googlenet.cnn"]
    for name in fuzz.MUTATIONS:
        a = fuzz.mutate(text, [(name, 7)])
        assert a == fuzz.mutate(text, [(name, 7)]), name
    changed = sum(fuzz.mutate(text, [(n, s)]) != text for n in fuzz.MUTATIONS for s in range(5))
    assert changed >= 0.9 * 5 * len(fuzz.MUTATIONS)


def test_harness_reports_crashes_and_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzer must be able to fail: a non-CnncError and a hang are failures, a CnncError is not."""
    def crash(text: str, **kw: object) -> None:
        raise KeyError("boom")

    def hang(text: str, **kw: object) -> None:
        time.sleep(5)

    def user_error(text: str, **kw: object) -> None:
        raise ShapeError("bad")

    monkeypatch.setattr(fuzz, "check", crash)
    out = fuzz.run_case("x")
    assert (out.kind, out.error) == ("failure", "KeyError") and "boom" in out.trace
    monkeypatch.setattr(fuzz, "check", hang)
    t0 = time.perf_counter()
    out = fuzz.run_case("x", timeout=0.2)
    assert (out.kind, out.error) == ("failure", "CaseTimeout")
    assert time.perf_counter() - t0 < 2
    monkeypatch.setattr(fuzz, "check", user_error)
    assert (fuzz.run_case("x").kind, fuzz.run_case("x").error) == ("error", "ShapeError")

    def broken_pass(text: str, **kw: object) -> None:
        raise GraphError("pass left a dangling edge")

    monkeypatch.setattr(fuzz, "check", broken_pass)
    assert fuzz.run_case("x").kind == "failure"  # a CnncError, but one that means a bug

    def control_characters(text: str, **kw: object) -> None:
        raise ShapeError("bad", Span("f.cnn", 1, 3), "input \x1b[2J 3x8x8\n")

    monkeypatch.setattr(fuzz, "check", control_characters)
    assert fuzz.run_case("x").kind == "error"  # rendered safely: the line's control character shows as '?'


def test_failures_are_saved_with_their_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def picky(text: str, **kw: object) -> None:
        if "conv" in text:
            raise ZeroDivisionError("picky")

    monkeypatch.setattr(fuzz, "check", picky)
    code = fuzz.main(["--cases", "20", "--seed", "1", "--save", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "cases: 20" in out and "ZeroDivisionError" in out
    saved = sorted(tmp_path.glob("*.cnn"))
    assert saved
    for p in saved:
        assert "conv" in p.read_text(encoding="utf-8")
        assert "picky" in p.with_suffix(".txt").read_text(encoding="utf-8")


def test_cli_summary_counts_add_up(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert fuzz.main(["--cases", "40", "--seed", "5", "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    nums = {ln.split(":")[0].strip(): int(ln.split(":")[1].split()[0]) for ln in out.splitlines()
            if ln.split(":")[0].strip() in ("succeeded", "CnncError", "failures (not a CnncError, or a hang)")}
    assert sum(nums.values()) == 40, out
