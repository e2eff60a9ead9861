"""The generated CPU module as a production runtime (issue 13): forked and spawned children,
many threads on one Model, long runs at a flat memory, pickling, and a kernel cache that
cannot be written.

LeNet-5's committed module serves throughout (its kernels are cached beside it); the
answers are checked against the float64 reference executor.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from numerics import TOL32, rel_err

import generated.lenet5_cpu as net
from cnnc.frontend import load
from cnnc.runtime.reference import run

ROOT = Path(__file__).resolve().parents[1]
GRAPH = load(ROOT / "archs" / "lenet5.cnn")
# a child that does not answer in this time hangs (a call takes milliseconds; a spawned child
# imports NumPy, Numba and the module and loads the cached kernels in a few seconds)
CHILD_TIMEOUT = 120


def batch(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *net.INPUT_SHAPE)).astype(np.float32)


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch):
    """Three worker threads and every step split (so the helper pool runs even for LeNet)."""
    before = net.get_num_threads()
    net.set_num_threads(3)
    monkeypatch.setattr(net, "_MIN_SPLIT", 0)
    yield 3
    net.set_num_threads(before)


# --- processes: fork, spawn, forkserver ------------------------------------------------------

def _child(out: mp.Queue, model: object, params: dict, x: np.ndarray) -> None:
    """In the child: the inherited (or unpickled) Model and a fresh one, on the same input."""
    out.put((model(x), type(model)(params)(x)))


@pytest.mark.parametrize("method, ran_before", [("fork", True), ("fork", False), ("spawn", True),
                                                ("forkserver", True)])
def test_model_runs_in_a_child_process(method: str, ran_before: bool, threads: int) -> None:
    params = net.init_params(4)
    x = batch(16, seed=5)  # 16 images: conv1 is split across the helper threads
    model = net.Model(params)
    if ran_before:
        model(x)  # the helper threads exist before the fork
    ctx = mp.get_context(method)
    out = ctx.Queue()
    child = ctx.Process(target=_child, args=(out, model, params, x))
    child.start()
    try:
        inherited, fresh = out.get(timeout=CHILD_TIMEOUT)
    except queue.Empty:
        pytest.fail(f"no answer from a {method} child in {CHILD_TIMEOUT} s (hung?)")
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    ref = run(GRAPH, params, x)
    assert rel_err(inherited, ref) <= TOL32 and rel_err(fresh, ref) <= TOL32
    assert rel_err(model(x), ref) <= TOL32  # and the parent still works


# --- threads -------------------------------------------------------------------------------

def test_concurrent_calls_on_one_model_give_the_serial_answers(threads: int) -> None:
    """8 threads, 6 calls each, batch sizes 1, 2, 3 and 5 mixed, all on one Model at once.

    The same call at the same thread count runs the same arithmetic in the same order, so any
    difference from the serial answer is a race: compared exactly."""
    model = net.Model(net.init_params(2))
    jobs = [[batch((1, 2, 3, 5)[(t + i) % 4], seed=100 * t + i) for i in range(6)] for t in range(8)]
    serial = [[model(x) for x in xs] for xs in jobs]
    got: list[list[np.ndarray | None]] = [[None] * 6 for _ in jobs]
    start = threading.Barrier(len(jobs))
    errors = []

    def work(t: int) -> None:
        try:
            start.wait()
            for i, x in enumerate(jobs[t]):
                got[t][i] = model(x)
        except BaseException as e:  # reported below, with the thread it came from
            errors.append((t, e))

    pool = [threading.Thread(target=work, args=(t,)) for t in range(len(jobs))]
    for th in pool:
        th.start()
    for th in pool:
        th.join(CHILD_TIMEOUT)
    assert not errors, errors
    for t, xs in enumerate(jobs):
        for i in range(len(xs)):
            np.testing.assert_array_equal(got[t][i], serial[t][i], err_msg=f"thread {t}, call {i}")
    ref = run(GRAPH, model.params, jobs[0][0])
    assert rel_err(serial[0][0], ref) <= TOL32


def test_changing_the_thread_count_during_calls(threads: int) -> None:
    """set_num_threads while other threads call: no error, right answers."""
    model = net.Model(net.init_params(3))
    x = batch(4, seed=9)
    want = run(GRAPH, model.params, x)
    answers = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            answers.append(model(x))

    pool = [threading.Thread(target=caller) for _ in range(3)]
    for th in pool:
        th.start()
    try:
        for n in (1, 4, 2, 3) * 5:
            net.set_num_threads(n)
    finally:
        stop.set()
        for th in pool:
            th.join(CHILD_TIMEOUT)
    assert answers and all(rel_err(y, want) <= TOL32 for y in answers)


def test_a_part_that_raises_in_a_helper_thread_is_raised_by_the_caller(threads: int) -> None:
    """The helper pool hands a part's exception to its caller, after every part has finished, and
    the helpers keep serving (the next call runs)."""
    finished = []

    def part(i: int) -> None:
        if i == 2:
            raise ValueError("part 2 failed")
        finished.append(i)

    with pytest.raises(ValueError, match="part 2 failed"):
        net._WORKERS.run(part, [(0,), (1,), (2,)])
    assert sorted(finished) == [0, 1]
    net._WORKERS.run(part, [(3,), (4,), (5,)])
    assert sorted(finished) == [0, 1, 3, 4, 5]


def test_retired_helpers_finish_the_parts_already_queued(threads: int) -> None:
    """set_num_threads retires the helpers while parts wait in their queue (both helpers busy with
    one call's parts, a second call's parts queued behind them): every part still runs, both calls
    return, and the next call starts new helpers."""
    import time

    gate = threading.Event()
    ran = []

    def part(i: int) -> None:
        if i < 3:
            gate.wait(CHILD_TIMEOUT)  # the first call's parts hold the helpers
        ran.append(i)

    first = threading.Thread(target=net._WORKERS.run, args=(part, [(0,), (1,), (2,)]))
    second = threading.Thread(target=net._WORKERS.run, args=(part, [(10,), (11,), (12,)]))
    first.start()
    time.sleep(0.2)  # the helpers take parts 1 and 2
    second.start()
    time.sleep(0.2)  # parts 11 and 12 wait in the queue
    net.set_num_threads(2)
    gate.set()
    for call in (first, second):
        call.join(CHILD_TIMEOUT)
        assert not call.is_alive()
    assert sorted(ran) == [0, 1, 2, 10, 11, 12]
    net._WORKERS.run(part, [(20,), (21,)])
    assert sorted(ran)[-2:] == [20, 21]


# --- hand-offs: helpers and callers spin a while before they sleep ----------------------------

def test_the_spin_loops_count_exactly_and_give_up_after_their_turns() -> None:
    """The atomics the spinning hand-off rests on: two threads adding to one counter outside the GIL lose no
    increment; a wait returns once the count is reached, and gives up (False) after its turns when it is not."""
    from numba import njit

    @njit(nogil=True)
    def add(count, times):
        for _ in range(times):
            net._atomic_increment(count, 0)

    count = np.zeros(1, np.int64)
    add(count, 1)
    adders = [threading.Thread(target=add, args=(count, 200_000)) for _ in range(2)]
    for t in adders:
        t.start()
    assert net._wait_count(count, 400_001, 1 << 40)  # spins until both have added
    for t in adders:
        t.join()
    assert count[0] == 400_001
    assert not net._wait_count(count, 400_002, 1000)
    posted, taken = np.array([3], np.int64), np.array([3], np.int64)
    assert not net._spin_idle(posted, taken, 1000, 10)  # nothing queued: gives up
    posted[0] = 4
    assert net._spin_idle(posted, taken, 1000, 10)


def test_no_spinning_with_more_threads_than_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Oversubscribed, a spinning thread would hold a CPU a working one needs: every wait sleeps at once (and the
    answers stay the serial ones)."""
    before = net.get_num_threads()
    monkeypatch.setattr(net, "_MIN_SPLIT", 0)
    model = net.Model(net.init_params(0))
    x = batch(3, seed=4)
    want = model(x)
    try:
        net.set_num_threads(len(net._allowed_cpus()) + 1)
        got = model(x)
        assert net._WORKERS._pool.spins == 0 and net._WORKERS._pool.grace == 0
        np.testing.assert_array_equal(got, want)
        if len(net._allowed_cpus()) >= 2 and os.environ.get("CNNC_SPIN_US") != "0":
            net.set_num_threads(2)
            model(x)
            assert net._WORKERS._pool.spins > 0
    finally:
        net.set_num_threads(before)


def test_spinning_is_off_in_a_process_started_with_cnnc_spin_us_0() -> None:
    """CNNC_SPIN_US=0: helpers and callers sleep at once (no turns, no grace), and a split call still gives the
    serial answer."""
    code = ("import numpy as np, generated.lenet5_cpu as m; m.set_num_threads(2); m._MIN_SPLIT = 0; "
            "model = m.Model(m.init_params(0)); x = np.ones((3, *m.INPUT_SHAPE), np.float32); "
            "y = model(x); m.set_num_threads(1); print(m._spin_turns(), np.array_equal(y, model(x)))")
    base = {k: v for k, v in os.environ.items() if k != "CNNC_SPIN_US"}
    for env, spins in (({"CNNC_SPIN_US": "0"}, "(0, 0)"), ({}, None)):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                             text=True, timeout=CHILD_TIMEOUT, check=True)
        turns, same = out.stdout.strip().rsplit(" ", 1)
        assert same == "True"
        if spins is not None:
            assert turns == spins
        else:
            spin, grace = (int(v) for v in turns.strip("()").split(","))
            assert spin > grace > 0


# --- pinning: a call's threads each on a CPU of their own ------------------------------------

def _pinnable_cpus() -> list[int]:
    """The CPUs this process may use, where it may also set a thread's CPUs (some sandboxes refuse)."""
    try:
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
        return sorted(cpus)
    except (AttributeError, OSError):
        return []


CPUS = _pinnable_cpus()
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs two CPUs and sched_setaffinity")


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch):
    """Two threads, pinned, every step split."""
    before, pin = net.get_num_threads(), net._WORKERS.pin
    net.set_num_threads(2, pin=True)
    monkeypatch.setattr(net, "_MIN_SPLIT", 0)
    yield 2
    net.set_num_threads(before, pin=pin)


def _where() -> dict[int, set[int]]:
    """A part that records the CPUs its thread may run on, by thread."""
    seen: dict[int, set[int]] = {}

    def part(i: int) -> None:
        seen[threading.get_ident()] = os.sched_getaffinity(0)
    return seen, part


@needs_two_cpus
def test_a_call_and_its_helper_each_run_on_one_cpu_and_the_caller_gets_its_cpus_back(two_threads: int) -> None:
    before = os.sched_getaffinity(0)
    seen, record = _where()
    helped = threading.Event()

    def part(i: int) -> None:
        # the caller's part holds it until the helper has run the other: a caller runs parts no helper has taken
        # within its 200 us spin, and a helper on a busy CPU can take longer than that to start
        record(i)
        if i == 1:
            helped.set()
        else:
            helped.wait(CHILD_TIMEOUT)
    net._WORKERS.begin_call()
    try:
        net._WORKERS.run(part, [(0,), (1,)])
        assert os.sched_getaffinity(0) == {CPUS[0]}
    finally:
        net._WORKERS.end_call()
    assert os.sched_getaffinity(0) == before
    me = threading.get_ident()
    assert seen[me] == {CPUS[0]}
    assert [cpus for t, cpus in seen.items() if t != me] == [{CPUS[1]}]


@needs_two_cpus
def test_a_kernel_called_on_its_own_is_pinned_for_its_run(two_threads: int) -> None:
    """Outside a Model call (a kernel called directly, as cnnc tune's harness does), a split run pins the caller
    for that run alone: with only the helper pinned, the caller could sit on the helper's CPU."""
    before = os.sched_getaffinity(0)
    seen, part = _where()
    net._WORKERS.run(part, [(0,), (1,)])
    assert seen[threading.get_ident()] == {CPUS[0]}
    assert os.sched_getaffinity(0) == before


@needs_two_cpus
def test_a_model_call_leaves_its_thread_as_it_found_it(two_threads: int) -> None:
    """Pinned during the call (seen after each step), as before it after; also when the thread had
    been narrowed by its owner. The answer is unchanged."""
    x = batch(2, 11)
    model = net.Model(net.init_params(3))
    want = model(x)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(CPUS[:2]))
    during: list[set[int]] = []
    try:
        assert np.array_equal(model.trace(x, lambda i: during.append(os.sched_getaffinity(0))), want)
        assert during and all(cpus == {CPUS[0]} for cpus in during)
        assert os.sched_getaffinity(0) == set(CPUS[:2])
    finally:
        os.sched_setaffinity(0, before)


@needs_two_cpus
def test_only_one_of_several_calls_at_once_is_pinned(two_threads: int) -> None:
    """The first call keeps the caller's CPU; a second call meanwhile runs where it may."""
    seen, part = _where()
    other: list[set[int]] = []

    def second_call() -> None:
        os.sched_setaffinity(0, set(CPUS))  # a thread starts with its creator's CPUs (here the pinned one)
        net._WORKERS.begin_call()
        try:
            net._WORKERS.run(part, [(2,), (3,)])
            other.append(os.sched_getaffinity(0))
        finally:
            net._WORKERS.end_call()

    net._WORKERS.begin_call()
    try:
        net._WORKERS.run(part, [(0,), (1,)])
        t = threading.Thread(target=second_call)
        t.start()
        t.join(CHILD_TIMEOUT)
        assert os.sched_getaffinity(0) == {CPUS[0]}
    finally:
        net._WORKERS.end_call()
    assert other == [set(CPUS)]
    net._WORKERS.begin_call()  # the CPU is free again for the next call
    try:
        net._WORKERS.run(part, [(4,), (5,)])
        assert os.sched_getaffinity(0) == {CPUS[0]}
    finally:
        net._WORKERS.end_call()


@needs_two_cpus
@pytest.mark.parametrize("how", ["pin=False", "more threads than CPUs"])
def test_no_pinning_when_turned_off_or_oversubscribed(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before, pin = net.get_num_threads(), net._WORKERS.pin
    monkeypatch.setattr(net, "_MIN_SPLIT", 0)
    if how == "pin=False":
        net.set_num_threads(2, pin=False)
    else:
        net.set_num_threads(len(CPUS) + 1, pin=True)
    everywhere = os.sched_getaffinity(0)
    seen, part = _where()
    try:
        net._WORKERS.begin_call()
        try:
            net._WORKERS.run(part, [(i,) for i in range(net.get_num_threads())])
        finally:
            net._WORKERS.end_call()
        assert all(cpus == everywhere for cpus in seen.values())
    finally:
        net.set_num_threads(before, pin=pin)


def test_pinning_is_off_in_a_process_started_with_cnnc_pin_threads_0() -> None:
    code = "import generated.lenet5_cpu as m; print(m._WORKERS.pin)"
    env = {**os.environ, "CNNC_PIN_THREADS": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=CHILD_TIMEOUT, check=True)
    assert out.stdout.strip() == "False"


# --- long runs -----------------------------------------------------------------------------

def rss() -> int:
    """Resident memory of this process, bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_long_runs() -> None:
    model = net.Model(net.init_params(5), keep_batch_sizes=4)
    per_image = sum(net.BUFFER_SIZES) * 4  # bytes of one image's activation buffers
    x1 = batch(1, seed=1)
    for _ in range(20):
        model(x1)
    base = rss()
    for _ in range(1000):
        model(x1)
    grown = rss() - base
    # leaking one batch-1 buffer set per call would add 1000 * per_image (23.5 MB for LeNet)
    assert grown < 1000 * per_image / 4, f"RSS grew {grown / 2**20:.1f} MiB over 1,000 calls"

    # batch sizes 1..48 back and forth: buffers for all of them would hold 1176 images
    sizes = list(range(1, 49)) + list(range(48, 0, -1))
    xs = {n: batch(n, seed=n) for n in sizes}
    model(xs[48])
    base = rss()
    for n in sizes * 3:
        model(xs[n])
        assert len(model._arena.batch_sizes()) <= 4
    grown = rss() - base
    unbounded = sum(range(1, 49)) * per_image
    assert grown < unbounded / 4, f"RSS grew {grown / 2**20:.1f} MiB over changing batch sizes"
    assert model._arena.batch_sizes()[-1] == 1  # the most recently used size is kept


def test_buffers_scratch_and_packed_weights_start_on_cache_lines() -> None:
    # a vector load that straddles two cache lines costs Zen 4 two; NumPy's own large arrays start 16 bytes in
    model = net.Model(net.init_params(0))
    assert any(size % 16 for size in net.BUFFER_SIZES)  # LeNet's 6x14x14 pool output: rows are padded
    for n in (1, 3):
        buffers, scratch = model._arena.take(n)
        try:
            for b in buffers:
                assert b.flags.c_contiguous and b.ctypes.data % 64 == 0 and b.strides[0] % 64 == 0
                assert b.shape[0] == n
            assert all(b.shape[1] >= size for b, size in zip(buffers, net.BUFFER_SIZES, strict=True))
            for pair in scratch:
                assert all(a.ctypes.data % 64 == 0 for a in pair)
        finally:
            model._arena.give(n, buffers, scratch)
    for size in (1, 15, 1000, 100_003):
        v = net._aligned_vector(size)
        assert v.shape == (size,) and v.dtype == np.float32 and v.ctypes.data % 64 == 0
    rng = np.random.default_rng(0)
    w = rng.standard_normal((70, 9)).astype(np.float32)
    for wide in (False, True):
        p = net._oc_panels(w, 70, wide)
        assert p.ctypes.data % 64 == 0
        assert np.array_equal(p.transpose(0, 2, 1).reshape(-1, 9)[:70], w)  # channel k is panel k // width
        assert not p.transpose(0, 2, 1).reshape(-1, 9)[70:].any()
    d = net._dw_panels(w.reshape(70, 1, 3, 3), 70, 3)
    assert d.ctypes.data % 64 == 0 and d.shape == (5, 9, 16)
    assert np.array_equal(d.transpose(0, 2, 1).reshape(-1, 9)[:70], w) and not d.transpose(0, 2, 1)[4, 6:].any()


# --- pickling ------------------------------------------------------------------------------

def test_model_pickles_as_its_source_weights() -> None:
    params = net.init_params(6)
    model = net.Model(params, check_finite=False, keep_batch_sizes=2)
    x = batch(3, seed=6)
    y = model(x)
    data = pickle.dumps(model)
    weights = sum(a.nbytes for a in params.values())
    assert weights <= len(data) < weights + 64 * 1024  # the source weights, not buffers or derived copies
    again = pickle.loads(data)
    assert again.check_finite is False and again._arena.keep == 2
    assert set(again.params) == set(net.PARAM_SHAPES)
    np.testing.assert_array_equal(again(x), y)  # same weights, same arithmetic: the same answer


# --- a kernel cache that cannot be written -------------------------------------------------

@pytest.mark.slow
def test_read_only_install_runs_with_one_warning(tmp_path: Path) -> None:
    """No writable cache anywhere: beside the module, NUMBA_CACHE_DIR, the user's cache. The
    tests run as root in CI, so every one of those paths goes through a regular file, which
    no user (root included) can create a directory under."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "generated" / "lenet5_cpu.py", site / "lenet5_cpu.py")
    (site / "__pycache__").write_text("not a directory\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blocker / "numba"), "XDG_CACHE_HOME": str(blocker / "xdg"),
           "HOME": str(blocker), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "always"}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; import lenet5_cpu as m; "
            "x = np.ones((2, *m.INPUT_SHAPE), np.float32); y = m.Model(m.init_params(0))(x); "
            "print(m._CACHE, y.shape)")
    done = subprocess.run([sys.executable, "-c", code, str(site)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "(2,", "10)"]
    assert done.stderr.count("no writable directory for Numba's kernel cache") == 1, done.stderr
    assert not (blocker.is_dir() or (site / "__pycache__").is_dir())


@pytest.mark.slow
def test_first_call_compiles_the_kernels_in_parallel_processes(tmp_path: Path) -> None:
    """A fresh copy of the module (an empty kernel cache beside it) with CNNC_COMPILE_JOBS=2: the
    first call records the kernels it needs and a child process compiles its share of them into
    the cache, which this process then loads (Numba counts those loads as cache hits: nothing else
    could have written that fresh cache). The answer is the reference's; a second process finds
    everything cached and starts no child."""
    shutil.copy(ROOT / "generated" / "lenet5_cpu.py", tmp_path / "lenet5_cpu.py")
    x = batch(2, 7)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, subprocess; import lenet5_cpu as m; "
            "from numba.core.registry import CPUDispatcher; started = []; popen = subprocess.Popen\n"
            "class Spy(popen):\n"
            "    def __init__(self, *a, **k): started.append(a); super().__init__(*a, **k)\n"
            "subprocess.Popen = Spy\n"
            "y = m.Model(m.init_params(0))(np.load(sys.argv[1] + '/x.npy')); np.save(sys.argv[1] + '/y.npy', y)\n"
            "hits = sorted(k for k, d in vars(m).items() if isinstance(d, CPUDispatcher) and d.stats.cache_hits)\n"
            "print(len(started), ' '.join(hits) or '-')")
    env = {**os.environ, "CNNC_COMPILE_JOBS": "2"}
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert "RuntimeWarning" not in done.stderr, done.stderr
        y = np.load(tmp_path / "y.npy")
        assert rel_err(y, run(GRAPH, net.init_params(0), x)) < TOL32
    children, hits = runs[0].stdout.split(maxsplit=1)
    assert children == "1" and hits.strip() != "-", runs[0].stdout  # one child; its kernels loaded from the cache
    assert runs[1].stdout.split()[0] == "0", runs[1].stdout  # all cached: no child


@pytest.mark.slow
def test_cache_written_under_the_package_path_loads_under_another_name(tmp_path: Path) -> None:
    """A kernel cache written by ``import pkg.lenet5_cpu`` loads in a process that imports the same file
    by path under another name, from where ``pkg`` is not importable: Numba imports the writer's module
    name to load its cache, and the module answers to it (it crashed with ModuleNotFoundError before)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(ROOT / "generated" / "lenet5_cpu.py", pkg / "lenet5_cpu.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CNNC_COMPILE_JOBS"] = "1"
    call = "print(m.Model(m.init_params(1))(np.ones((1, 1, 32, 32), np.float32)).sum())"
    first = f"import numpy as np, pkg.lenet5_cpu as m; {call}"
    a = subprocess.run([sys.executable, "-c", first], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=CHILD_TIMEOUT * 3)
    assert a.returncode == 0, a.stderr
    assert any(f.suffix == ".nbi" for f in (pkg / "__pycache__").iterdir())  # the cache, under pkg.lenet5_cpu
    second = (
        "import importlib.util, sys, numpy as np\n"
        f"spec = importlib.util.spec_from_file_location('third_name', {str(pkg / 'lenet5_cpu.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['third_name'] = m; spec.loader.exec_module(m)\n"
        f"{call}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    b = subprocess.run([sys.executable, "-c", second], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=CHILD_TIMEOUT * 3)
    assert b.returncode == 0, b.stderr
    assert float(b.stdout) == pytest.approx(float(a.stdout), rel=1e-6)
