"""``cnnc compile`` and ``cnnc bench`` from the command line, and the Numba disk cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.codegen.loader import import_path

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "archs" / "lenet5.cnn")


def test_compile_writes_identical_bytes_twice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", LENET, "-o", str(tmp_path)]) == 0
    path = tmp_path / "lenet5_cpu.py"
    first = path.read_bytes()
    assert "wrote" in capsys.readouterr().out
    assert main(["compile", LENET, "-o", str(tmp_path)]) == 0
    assert path.read_bytes() == first
    text = first.decode()
    assert "fuse_relu" in text.split('"""')[1]  # -O1 by default
    assert main(["compile", LENET, "-o", str(tmp_path), "-O0"]) == 0
    assert "none (-O0)" in path.read_text().split('"""')[1]


def test_compile_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", str(tmp_path / "missing.cnn"), "-o", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert main(["compile", LENET, "-o", str(tmp_path / "f")]) == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compile", LENET, "--target", "tpu"])
    assert e.value.code == 2


def test_compile_passes_and_dump(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", LENET, "-o", str(tmp_path), "-O0", "--pass", "fuse_relu", "--verify",
                 "--dump-after", "fuse_relu"]) == 0
    captured = capsys.readouterr()
    assert "after pass fuse_relu" in captured.err
    header = (tmp_path / "lenet5_cpu.py").read_text().split('"""')[1]
    assert "Passes applied: fuse_relu." in header


def test_bench_prints_timings_ratio_and_layers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("torch")
    rc = main(["bench", LENET, "-o", str(tmp_path), "--batch", "1,2", "--runs", "3", "--threads", "1",
               "--compare", "torch", "--per-layer"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = out.out.splitlines()
    assert "compiling kernels" in out.err
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["batch", "ms/batch"])
    assert lines[head].split() == ["batch", "ms/batch", "ms/image", "GFLOP/s", "torch", "ms", "ratio"]
    for i, n in enumerate((1, 2)):
        cells = lines[head + 1 + i].split()
        assert int(cells[0]) == n and len(cells) == 6
        ms, per_image, gflops, torch_ms, ratio = map(float, cells[1:])
        assert ms > 0 and torch_ms > 0
        assert per_image == pytest.approx(ms / n, abs=0.001)
        h = 0.0005  # printed to 3 decimals
        assert (ms - h) / (torch_ms + h) - 0.005 <= ratio <= (ms + h) / (torch_ms - h) + 0.005
        assert gflops == pytest.approx(2 * 416_520 * n / (ms * 1e-3) / 1e9, rel=0.05, abs=0.1)
    layers = [ln for ln in lines if "lenet5.cnn:" in ln]
    assert len(layers) == 7 and any("c1" in ln and "conv 5x5" in ln for ln in layers)
    assert "disagree" not in out.err


def test_interleaved_timing_pauses_before_every_timed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """time_group sleeps SETTLE seconds before each timed call (and only then), so that no engine is timed
    while the one before it still busy-waits (PyTorch's OpenMP threads); with settle=0 it never sleeps."""
    from cnnc import bench as B

    events: list[str] = []
    monkeypatch.setattr(B.time, "sleep", lambda s: events.append(f"sleep {s}"))
    times = B.time_group([lambda: events.append("a"), lambda: events.append("b")], runs=2, warmup=1)
    assert [len(t) for t in times] == [2, 2]
    pause = f"sleep {B.SETTLE}"
    assert events == ["a", "b", pause, "a", pause, "b", pause, "a", pause, "b"]  # warm-up unpaused
    events.clear()
    B.time_group([lambda: events.append("a")], runs=2, warmup=0, settle=0.0)
    assert events == ["a", "a"]
    events.clear()
    B.time_group([lambda: events.append("a")], runs=2, warmup=0)  # alone: nothing before it to wait out
    assert events == ["a", "a"]


def test_warm_timing_times_the_second_of_two_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """--warm: after the pause, an untimed call of the same engine, then the timed one (back to back)."""
    from cnnc import bench as B

    events: list[str] = []
    clock = iter(range(100))
    monkeypatch.setattr(B.time, "sleep", lambda s: events.append("sleep"))
    monkeypatch.setattr(B.time, "perf_counter", lambda: float(next(clock)))

    def call(name: str) -> None:
        events.append(name)
        next(clock)  # each call takes one tick, the timed one included

    times = B.time_group([lambda: call("a"), lambda: call("b")], runs=2, warmup=0, warm=True)
    assert events == ["sleep", "a", "a", "sleep", "b", "b"] * 2
    # the timed span: its own clock read, the second call's tick, then the closing read (the untimed call is outside)
    assert times == [[2.0, 2.0], [2.0, 2.0]]


def test_bench_warm_option_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["bench", LENET, "-o", str(tmp_path), "--batch", "1", "--runs", "2", "--threads", "1", "--warm"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "median of 2 runs and an untimed call (--warm)" in out.out


def test_bench_rejects_bad_options(capsys: pytest.CaptureFixture) -> None:
    for bad in (["--batch", "0"], ["--batch", "a"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            main(["bench", LENET, *bad])


def test_numba_cache_serves_a_second_process(tmp_path: Path) -> None:
    """A second process loads the kernels from the cache beside the module (no recompiling)."""
    shutil.copy(ROOT / "generated" / "lenet5_cpu.py", tmp_path / "lenet5_cpu.py")
    code = (
        "import json, sys, time, numpy as np; sys.path.insert(0, sys.argv[1]); import lenet5_cpu as m; "
        "t = time.perf_counter(); model = m.Model(m.init_params()); "
        "model(np.ones((1, 1, 32, 32), np.float32)); "
        "ks = [f for f in vars(m).values() if hasattr(f, 'stats') and f.stats.cache_hits is not None]; "
        "print(json.dumps({'hits': sum(sum(f.stats.cache_hits.values()) for f in ks), "
        "'misses': sum(sum(f.stats.cache_misses.values()) for f in ks), "
        "'kernels': sorted(f.__name__ for f in ks if f.signatures)}))"
    )
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    # every kernel the call ran (a register-blocked one among them: its vector code is an intrinsic) compiled in the
    # first process and loaded from the cache in the second
    assert runs[0]["misses"] >= 1 and "_conv2d_blocked" in runs[0]["kernels"]
    assert runs[1]["misses"] == 0 and runs[1]["hits"] == len(runs[1]["kernels"]) >= 2


def test_cache_written_under_one_name_loads_under_the_other(tmp_path: Path) -> None:
    """bench imports generated/x.py as generated.x; a user may import it bare: both must load."""
    pkg = tmp_path / "generated"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(ROOT / "generated" / "lenet5_cpu.py", pkg / "lenet5_cpu.py")
    first = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
             "from cnnc.codegen.loader import import_path; m = import_path(sys.argv[2]); "
             "assert m.__name__ == 'generated.lenet5_cpu', m.__name__; "
             "m.Model(m.init_params())(np.ones((1, 1, 32, 32), np.float32))")
    bare = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1] + '/generated'); import lenet5_cpu as m; "
            "m.Model(m.init_params())(np.ones((1, 1, 32, 32), np.float32)); "
            "print(sum(m._conv2d_blocked.stats.cache_hits.values()))")
    for code in (first, bare):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(pkg / "lenet5_cpu.py")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1"  # the bare import used the entry the package import wrote


@pytest.mark.slow
def test_ab_script_times_two_versions_and_refuses_one_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """benchmarks/ab.py: two copies of LeNet-5's module, a median and a ratio each; the same file twice is refused
    (one import name cannot hold two versions)."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("ab_script", ROOT / "benchmarks" / "ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    old, new = tmp_path / "old_lenet5_cpu.py", tmp_path / "new_lenet5_cpu.py"
    for p in (old, new):
        shutil.copy(ROOT / "generated" / "lenet5_cpu.py", p)
    ab.main(["--runs", "3", "--threads", "1", str(old), str(new)])
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert [r[-1] for r in rows] == [str(old), str(new)]
    assert float(rows[0][2]) == 1.0 and all(float(r[0]) > 0 for r in rows)
    # --pause: each timed call after an idle pause (3 rounds of 2 calls: at least 6 pauses)
    t0 = time.perf_counter()
    ab.main(["--runs", "3", "--threads", "1", "--pause", "0.2", str(old), str(new)])
    assert time.perf_counter() - t0 >= 6 * 0.2
    assert len(capsys.readouterr().out.splitlines()) == 2
    # --steps: a row per step of the network, each version's median and the difference
    ab.main(["--runs", "3", "--threads", "1", "--steps", str(old), str(new)])
    out = capsys.readouterr().out.splitlines()
    names = [s[0] for s in import_path(old).STEPS]  # the module ab.py imported
    rows = [ln.split() for ln in out[3:]]
    assert len(rows) == len(names) and [r[3] for r in rows] == names
    assert all(float(r[0]) > 0 and float(r[1]) > 0 and float(r[2]) == pytest.approx(float(r[1]) - float(r[0]), abs=2e-3)
               for r in rows)
    with pytest.raises(SystemExit):
        ab.main([str(old), str(old)])
