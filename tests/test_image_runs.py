"""Runs of steps that take the batch a share of images per thread (:mod:`cnnc.codegen.image_runs`).

Which steps join a run (weights against one image's tensors), where the runs break, what the module's code says
for them, and that such a module gives the float64 reference's answer on every thread count and batch size (shares
of unequal size included), calls ``tick`` once per step in order, and leaves its threads' split as it found it; how
the images go out in chunks, and that a thread slowed down takes fewer of them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from numerics import TOL32, rel_err

from cnnc.codegen import image_runs, write
from cnnc.codegen.loader import import_path
from cnnc.codegen.schedule import schedule
from cnnc.frontend import parse
from cnnc.passes.manager import run_pipeline
from cnnc.runtime import reference

# a stem and a block on 16x16 images (small weights against their tensors), then a 3x3 conv to 256 channels on
# 2x2 (256*64*9 = 147,456 weights against 64*4 + 256*4 = 1,280 tensor elements: 115x), then three more steps
NET = """
network runs
input 3x32x32

stem: conv(16, 3, stride=2, pad=1) relu
a: conv(32, 3, pad=1) relu
pool: maxpool(2)
b: conv(64, 1) relu
pool2: maxpool(4)
heavy: conv(256, 3, pad=1) relu
c: conv(64, 1) relu
pool3: gap
flatten
fc: fc(10)
"""


def plan_of(text: str):
    g = run_pipeline(parse(text, source="net.cnn", name="net"), 1, log=None)
    return g, schedule(g)


def test_steps_whose_weights_outweigh_their_tensors_break_the_runs() -> None:
    _, plan = plan_of(NET)
    nodes = [s.node for s in plan.steps]
    runs = [[nodes[i] for i in range(first, end)] for first, end in image_runs.image_runs(plan)]
    # "heavy" (115x) stays out and splits the rest in two; the fc (640 weights against 74 elements: 8.6x) joins
    assert runs == [["stem", "a", "pool", "b", "pool2"], ["c", "pool3", "fc"]]


def test_the_weight_ratio_decides() -> None:
    _, plan = plan_of(NET)
    heavy = next(s for s in plan.steps if s.node == "heavy")
    tensors = sum(r.size for r in heavy.inputs) + heavy.output.size
    weights = int(np.prod(plan.weights[heavy.weights].shape))
    assert weights > image_runs.WEIGHT_RATIO * tensors
    b = next(s for s in plan.steps if s.node == "b")
    assert int(np.prod(plan.weights[b.weights].shape)) <= image_runs.WEIGHT_RATIO * (
        sum(r.size for r in b.inputs) + b.output.size)


def test_a_run_is_at_least_two_steps() -> None:
    _, plan = plan_of("""
network lone
input 64x4x4
heavy: conv(512, 3, pad=1) relu
light: maxpool(2)
heavy2: conv(512, 3, pad=1) relu
""")
    assert image_runs.image_runs(plan) == []


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory):
    g, _ = plan_of(NET)
    path = write(g, "cpu", tmp_path_factory.mktemp("runs"))
    return g, import_path(path), path.read_text()


def test_the_module_names_each_run_and_its_steps(module) -> None:
    _, m, source = module
    # the first run starts at the input: its threads check their own images of it, not the call beforehand
    assert "_by_images(self._steps_0_4, x, buffers, scratch, tick, self.check_finite)" in source
    assert "check_input(x, False)" in source
    assert "def _steps_0_4(self, x, buffers, scratch, tick):" in source
    assert "# steps 0-4: each thread takes its share of the images through all of them" in source
    run = source[source.index("def _steps_0_4"):]
    run = run[:run.index("\n    def ", 1)]
    for node in ("stem", "a", "pool", "b", "pool2"):
        assert f" {node} " in run
    assert " heavy " not in run


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_a_module_with_runs_matches_the_reference_on_any_threads_and_batch(module, n: int) -> None:
    g, m, _ = module
    params = m.init_params(4)
    x = np.random.default_rng(n).standard_normal((n,) + m.INPUT_SHAPE).astype(np.float32)
    ref = reference.run(g, params, x)
    before = m.get_num_threads()
    try:
        for threads in (1, 2, 3):
            m.set_num_threads(threads)
            assert rel_err(m.Model(params)(x), ref) < TOL32, f"{threads} threads, batch {n}"
    finally:
        m.set_num_threads(before)


def test_every_step_ticks_once_in_order_and_the_split_is_restored(module) -> None:
    _, m, _ = module
    before = m.get_num_threads()
    try:
        m.set_num_threads(2)
        model = m.Model(m.init_params(0))
        x = np.random.default_rng(0).standard_normal((4,) + m.INPUT_SHAPE).astype(np.float32)
        ticks: list[tuple[int, int]] = []
        model.trace(x, lambda i: ticks.append((i, threading.get_ident())))
        assert [i for i, _ in ticks] == list(range(len(m.STEPS)))
        assert {t for _, t in ticks} == {threading.get_ident()}  # the caller's share ticks
        assert m.get_num_threads() == 2  # not 1: the shares' unsplit kernels were theirs alone
    finally:
        m.set_num_threads(before)


def test_a_share_runs_its_kernels_unsplit(module, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a share every kernel sees one thread while another share is still at work (none hands parts to the
    helper the other share runs on); only the last share still at work, the others done, sees them all (it splits
    its remaining steps with them: test_the_last_thread_splits_its_steps_with_the_threads_done)."""
    _, m, source = module
    seen: list[tuple[int, int]] = []
    # the wrapper the first step (the stem, in the first run) calls, as the module's code names it
    name = source[source.index("def _steps_0_4"):].split("\n        # ", 1)[1].split("\n", 2)[1].strip().split("(")[0]
    real = getattr(m, name)

    def spy(*args, **kwargs):
        share = getattr(m._WORKERS._local, "alone", None)
        others_done = share is not None and len(share.finished) >= share.threads - 1
        threads = m._WORKERS.threads
        # (its threads, or 1 while another share works: what the run's kernels may split across)
        seen.append((args[0].shape[0], 1 if others_done and threads == share.threads else threads))
        return real(*args, **kwargs)

    monkeypatch.setattr(m, name, spy)
    before = m.get_num_threads()
    try:
        m.set_num_threads(2)
        model = m.Model(m.init_params(0))
        x = np.random.default_rng(0).standard_normal((5,) + m.INPUT_SHAPE).astype(np.float32)
        model(x)  # the first call also compiles (it records the kernel calls first)
        seen.clear()
        model(x)
        assert seen and {t for _, t in seen} == {1}  # each chunk on one thread
        assert sorted({n for n, _ in seen}) == [1]  # five chunks of one image (5 / 4 rounds to 1)
        seen.clear()
        model.trace(x, lambda i: None)  # profiled: one share per thread
        assert sorted({n for n, _ in seen}) == [2, 3]
        seen.clear()
        model(x[:1])  # fewer images than threads: the steps split as usual
        assert seen and set(seen) == {(1, 2)}
    finally:
        m.set_num_threads(before)


def test_a_thread_alone_runs_every_part_of_a_split_itself(module) -> None:
    """A share may run on a helper thread: while the other threads have shares of their own, a split inside it (a
    kernel asking for parts regardless) runs on this thread, as the helpers could all be busy with shares."""
    _, m, _ = module
    before = m.get_num_threads()
    try:
        m.set_num_threads(2)
        ran: list[tuple[int, int]] = []
        share = m._Share(2)

        def body():
            assert m._WORKERS.threads == 1
            m._WORKERS.run(lambda i: ran.append((i, threading.get_ident())), [(0,), (1,), (2,)])

        m._WORKERS.alone(body, share)
        assert ran == [(0, threading.get_ident()), (1, threading.get_ident()), (2, threading.get_ident())]
        assert m._WORKERS.threads == 2
    finally:
        m.set_num_threads(before)


def test_the_last_thread_splits_its_steps_with_the_threads_done(module) -> None:
    """The caller's chunk takes far longer: the helper takes the other three, and once it has, the caller's
    remaining steps split in two again, the helper running one part of each (it would otherwise idle until the
    caller's chunk ends). Every step of every chunk runs each of its parts once; each thread's steps get its own
    scratch first."""
    _, m, _ = module
    before = m.get_num_threads()
    try:
        m.set_num_threads(2)
        caller = threading.get_ident()
        lock = threading.Lock()
        parts: list[tuple[int, int, int, int]] = []  # (first image, step, part, thread)
        scratch = [(np.zeros(1, np.float32), np.zeros(1, np.float32)) for _ in range(2)]
        firsts: dict[int, int] = {}
        chunks: dict[int, list[int]] = {}

        def steps(x, buffers, mine, tick):
            me = threading.get_ident()
            firsts.setdefault(me, id(mine[0]))
            assert len(mine) == 2 and {id(s) for s in mine} == {id(s) for s in scratch}
            image = int(x[0, 0])
            chunks.setdefault(me, []).append(image)
            for step in range(6):
                if me == caller:
                    time.sleep(0.02)

                def part(k, image=image, step=step, slow=me == caller):
                    time.sleep(0.03 if slow else 0.0)  # the caller's parts take a while: a helper takes one
                    with lock:
                        parts.append((image, step, k, threading.get_ident()))

                m._WORKERS.run(part, [(k,) for k in range(m._WORKERS.threads)])

        x = np.arange(8, dtype=np.float32).reshape(8, 1).repeat(3, axis=1)
        buffers = (np.zeros((8, 4), np.float32),)
        m._by_images(steps, x, buffers, scratch, m._no_tick)
        assert len(firsts) == 2 and firsts[caller] == id(scratch[0]) and len(set(firsts.values())) == 2
        helper = next(t for t in firsts if t != caller)
        assert len(chunks[caller]) == 1 and sorted(chunks[caller] + chunks[helper]) == [0, 2, 4, 6]
        assert sorted({(i, s) for i, s, _, _ in parts}) == [(i, s) for i in (0, 2, 4, 6) for s in range(6)]
        slow = chunks[caller][0]
        mine = [(s, k, t) for i, s, k, t in parts if i == slow]
        assert len({(s, k) for s, k, _ in mine}) == len(mine)  # no part ran twice
        assert (5, 1, helper) in mine  # the last step: split, one part on the helper
    finally:
        m.set_num_threads(before)


@pytest.mark.parametrize("n,threads", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (8, 2), (8, 3), (16, 2), (7, 4)])
def test_the_chunks_cover_the_batch_once_in_equal_chunks_of_half_a_share(module, n: int, threads: int) -> None:
    _, m, _ = module
    chunks = m._image_chunks(n, threads)
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(chunks[:-1], chunks[1:], strict=True))  # in order, no gap or overlap
    sizes = [b - a for a, b in chunks]
    assert len(set(sizes[:-1])) <= 1 and 0 < sizes[-1] <= sizes[0]  # equal, but for a smaller last one
    assert sizes[0] <= max(1, -(-n // (2 * threads)))  # about half an even share
    assert len(chunks) >= min(n, 2 * threads) or sizes[0] > 1  # two or more chunks per thread where images allow
    assert m._image_chunks(8, 2) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert m._image_chunks(3, 2) == [(0, 1), (1, 2), (2, 3)]


def test_a_slowed_thread_takes_fewer_images(module) -> None:
    """The caller's images take 10x as long here: the helper takes every chunk but the caller's first (on an even
    machine each thread ends with its half)."""
    _, m, _ = module
    before = m.get_num_threads()
    try:
        m.set_num_threads(2)
        caller = threading.get_ident()
        done: dict[int, list[int]] = {}

        def steps(x, buffers, scratch, tick):
            me = threading.get_ident()
            done.setdefault(me, []).extend(int(v) for v in x[:, 0])
            time.sleep((0.05 if me == caller else 0.005) * x.shape[0])

        x = np.arange(8, dtype=np.float32).reshape(8, 1).repeat(3, axis=1)
        buffers = (np.zeros((8, 4), np.float32),)
        scratch = [(np.zeros(1, np.float32), np.zeros(1, np.float32)) for _ in range(2)]
        m._by_images(steps, x, buffers, scratch, m._no_tick)
        assert sorted(i for images in done.values() for i in images) == list(range(8))
        assert done[caller] == [0, 1]  # its first chunk of 2
        assert sorted(i for t, images in done.items() if t != caller for i in images) == [2, 3, 4, 5, 6, 7]
    finally:
        m.set_num_threads(before)
