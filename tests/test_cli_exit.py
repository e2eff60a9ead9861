"""The command line's contract under attack (issue 7): every command has --help; exit 0 on success,
2 on a user error (bad file, bad option, bad source, bad weights, unwritable output) with a clear
message and no traceback, 1 on an internal error with a hint to report it; --traceback shows it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnc import cli
from cnnc.cli import main
from cnnc.codegen import render
from cnnc.commands import COMMANDS

NET = "input 1x12x12\nconv(4, 3) relu\nflatten\nfc(3)\n"


@pytest.fixture
def net(tmp_path: Path) -> Path:
    f = tmp_path / "small.cnn"
    f.write_text(NET, encoding="utf-8")
    return f


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: --help, bad options
        code = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    return err


def test_every_command_is_registered() -> None:
    p = cli.build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], cmd: str) -> None:
    code, out, _ = run(capsys, cmd, "--help")
    assert code == 0
    assert out.startswith(f"usage: cnnc {cmd}") and "FILE" in out.upper() and len(out) > 300


def test_top_level_help_version_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in COMMANDS)
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("cnnc ")
    code, out, _ = run(capsys)
    assert code == 2 and "usage" in out


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["inspect"],
    ["inspect", "{net}", "--format", "yaml"],
    ["inspect", "{net}", "--no-such-option"],
    ["inspect", "{net}", "-O", "7"],
    ["compile", "{net}", "--target", "fpga"],
    ["run", "{net}", "--batch", "many"],
    ["run", "{net}", "--dtype", "int8"],
    ["bench", "{net}", "--batch", "0"],
    ["bench", "{net}", "--runs", "-1"],
    ["run", "{net}", "--seed", "-1"],  # was an internal error: numpy refuses negative seeds
    ["bench", "{net}", "--seed", "-2"],
])
def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], net: Path, argv: list[str]) -> None:
    code, _, err = run(capsys, *(a.format(net=net) for a in argv))
    assert code == 2 and "usage: cnnc" in err and "error:" in err


@pytest.mark.parametrize("cmd", COMMANDS)
def test_bad_files_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, cmd: str) -> None:
    extra = ["--runs", "1", "--batch", "1"] if cmd == "bench" else []
    err = user_error(capsys, cmd, tmp_path / "missing.cnn", *extra)
    assert "missing.cnn: no such file" in err
    err = user_error(capsys, cmd, tmp_path, *extra)
    assert "is a directory" in err
    binary = tmp_path / "binary.cnn"
    binary.write_bytes(b"input 3x8x8\n\xff\xfe\x00conv")
    if cmd == "import":  # reads ONNX, not .cnn (tests/test_onnx_roundtrip.py checks its files)
        assert "is not an ONNX model" in user_error(capsys, cmd, binary)
        return
    assert "not UTF-8" in user_error(capsys, cmd, binary, *extra)
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x8x8\nconv(4, 9)\n", encoding="utf-8")
    err = user_error(capsys, cmd, bad, *extra)
    assert f"{bad}:2:1: error: kernel 9 is larger than its input" in err and "^" in err


def test_internal_error_exits_1_with_a_hint_and_traceback_on_request(
        capsys: pytest.CaptureFixture[str], net: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnc.commands import inspect as inspect_cmd

    def broken(g: object) -> str:
        raise KeyError("simulated bug")

    monkeypatch.setitem(inspect_cmd.FORMATS, "table", broken)
    code, out, err = run(capsys, "inspect", net)
    assert code == 1 and out == ""
    assert "internal error: KeyError" in err and "simulated bug" in err
    assert "please report" in err and "--traceback" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "--traceback", "inspect", net)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "in broken" in err and "please report" in err


def test_traceback_flag_also_shows_user_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 3x8x8\nconv(4, 9)\n", encoding="utf-8")
    code, _, err = run(capsys, "--traceback", "inspect", bad)
    assert code == 2 and "Traceback (most recent call last)" in err and "ShapeError" in err


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str], net: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnc.commands import inspect as inspect_cmd

    def interrupted(g: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setitem(inspect_cmd.FORMATS, "table", interrupted)
    code, _, err = run(capsys, "inspect", net)
    assert code == 130 and "interrupted" in err


def test_exit_codes_of_the_real_process(net: Path, tmp_path: Path) -> None:
    def proc(*argv: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cnnc", *map(str, argv)], capture_output=True, text=True,
                              timeout=120)

    ok = proc("inspect", net, "--format", "json")
    assert ok.returncode == 0 and ok.stdout.startswith("{")
    missing = proc("inspect", tmp_path / "nope.cnn")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    assert proc("inspect", net, "--format", "yaml").returncode == 2


# -- weight files through `cnnc run --params` (cnnc/params.py's own tests cover the rest) ------------

def _good_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"conv1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
            "conv1.bias": rng.standard_normal(4).astype(np.float32),
            "fc1.weight": rng.standard_normal((3, 400)).astype(np.float32),
            "fc1.bias": rng.standard_normal(3).astype(np.float32)}


class _Trap:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (self.path,))


def test_good_params_run(capsys: pytest.CaptureFixture[str], net: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", **_good_params())
    code, out, err = run(capsys, "run", net, "--params", tmp_path / "p.npz")
    assert code == 0, err


@pytest.mark.parametrize("change,message", [
    (lambda p: p.update({"fc1.bias": np.array([1.0, np.inf, 2.0], np.float32)}), "fc1.bias has 1 non-finite value"),
    (lambda p: p["conv1.weight"].__setitem__((0, 0, 0, 0), np.nan), "conv1.weight has 1 non-finite value"),
    (lambda p: p.update({"conv1.weight": p["conv1.weight"].astype(np.float16)}), "dtype float16, expected float32"),
    (lambda p: p.update({"fc1.weight": p["fc1.weight"].astype(np.int32)}), "dtype int32, expected float32"),
    (lambda p: p.update({"fc1.weight": p["fc1.weight"].T.copy()}), "fc1.weight has shape (400, 3), expected (3, 400)"),
    (lambda p: p.update({"conv1.extra": p.pop("conv1.bias")}), "missing conv1.bias"),
    (lambda p: p.update({"conv1.extra": np.ones(2, np.float32)}), "unexpected conv1.extra"),
], ids=["inf", "nan", "float16", "int", "transposed", "renamed", "extra"])
def test_bad_params_through_the_cli(capsys: pytest.CaptureFixture[str], net: Path, tmp_path: Path,
                                    change, message: str) -> None:  # noqa: ANN001
    p = _good_params()
    change(p)
    np.savez(tmp_path / "p.npz", **p)
    assert message in user_error(capsys, "run", net, "--params", tmp_path / "p.npz")


def test_pickles_are_never_unpickled(capsys: pytest.CaptureFixture[str], net: Path, tmp_path: Path) -> None:
    trap = tmp_path / "UNPICKLED"
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Trap(trap)))
    inside = tmp_path / "inside.npz"
    p = _good_params()
    np.savez(inside, **{**p, "fc1.bias": np.array([_Trap(trap)], dtype=object)})
    for path in (raw, inside):
        err = user_error(capsys, "run", net, "--params", path)
        assert "pickle" in err
    assert not trap.exists()


def test_forged_array_header_is_refused_before_allocating(capsys: pytest.CaptureFixture[str], net: Path,
                                                         tmp_path: Path) -> None:
    """A 200-byte .npz declaring a 40 TB array: a clear error, not a MemoryError (exit 1)."""
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (10**13,)})
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(forged, "w") as z:
        z.writestr("conv1.weight.npy", head.getvalue() + b"\0" * 64)
    err = user_error(capsys, "run", net, "--params", forged)
    assert "conv1.weight declares shape (10000000000000,)" in err


# -- output files ---------------------------------------------------------------------------------

def test_compile_into_an_unusable_directory(capsys: pytest.CaptureFixture[str], net: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    assert "not a directory" in user_error(capsys, "compile", net, "-o", afile)
    assert "cannot write into" in user_error(capsys, "compile", net, "-o", afile / "sub")
    assert "cannot write" in user_error(capsys, "inspect", net, "-o", afile / "report.txt")


def _unwritable_dir(tmp_path: Path) -> Path | None:
    """A directory this process cannot write into (read-only mode, or /sys even for root)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    for cand in (d, Path("/sys")):
        try:
            probe = cand / ".cnnc_probe"
            probe.write_text("x")
            probe.unlink()
        except OSError:
            return cand
    return None


def test_compile_into_a_read_only_directory(capsys: pytest.CaptureFixture[str], net: Path, tmp_path: Path) -> None:
    d = _unwritable_dir(tmp_path)
    if d is None:
        pytest.skip("no unwritable directory available")
    try:
        err = user_error(capsys, "compile", net, "-o", d)
        assert f"cannot write into {d}" in err
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_failed_write_leaves_the_previous_module_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "net_cpu.py"
    render.write_atomic(target, "OLD = 1\n")

    def fail(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        render.write_atomic(target, "NEW = 2\n" * 1000)
    assert target.read_text(encoding="utf-8") == "OLD = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net_cpu.py"]  # no temporary file left behind
    monkeypatch.undo()
    render.write_atomic(target, "NEW = 2\n")
    assert target.read_text(encoding="utf-8") == "NEW = 2\n"


def test_out_of_memory_is_a_clear_user_error(capsys: pytest.CaptureFixture[str], net: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A legal network too large for this machine's memory: exit 2 with advice, not an internal error."""
    from cnnc.commands import inspect as inspect_cmd

    def huge(g: object) -> str:
        raise MemoryError

    monkeypatch.setitem(inspect_cmd.FORMATS, "table", huge)
    code, _, err = run(capsys, "inspect", net)
    assert code == 2 and "out of memory" in err and "--batch" in err
    assert "internal error" not in err and "Traceback" not in err
