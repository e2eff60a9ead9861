"""Every CPU conv strategy against the float64 reference, the cost model's choices, and ``--kernel``.

The strategies run through one compiled module holding every kernel (they are generic over shapes) with the call
line and weight transform the backend writes for a step (:mod:`cnnc.codegen.kernels.harness`). Bound: the
largest absolute error relative to the reference's largest magnitude must stay below 1e-4, the accuracy contract
of every generated module (README); float32 sums of at most a few thousand products (and Winograd's transforms,
which only add, subtract and halve) stay orders of magnitude below it, so a wrong index or a missed pixel (the
output buffer starts as NaN) fails, rounding never does.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc import params as cparams
from cnnc.cli import main
from cnnc.codegen import generate, write
from cnnc.codegen.kernels import (
    STRATEGIES,
    Choice,
    ConvShape,
    choices,
    choose,
    decide,
    direct,
    eligible,
    harness,
    shape_of_node,
)
from cnnc.codegen.kernels.options import resolve
from cnnc.codegen.loader import import_path
from cnnc.errors import InputError
from cnnc.frontend import load
from cnnc.graph import GraphBuilder
from cnnc.passes.manager import run_pipeline
from cnnc.runtime.reference import run

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ROOT / "archs"
TOL = 1e-4
#: shapes with more multiply-adds per image than this are marked slow (the float64 reference takes seconds)
SLOW_MACS = 150_000_000


@pytest.fixture(scope="module")
def mod(tmp_path_factory: pytest.TempPathFactory):
    m = harness.kernel_module(tmp_path_factory.mktemp("kernels"))
    m.set_num_threads(2)  # the split paths (images, channels, row bands) run even on one core
    return m


def arch_shapes() -> list[ConvShape]:
    """Every distinct conv shape of the shipped networks, as compiled (-O1: fused 1x1 convs are wider)."""
    shapes = set()
    for p in sorted(ARCHS.glob("*.cnn")):
        g = run_pipeline(load(p), 1, log=None)
        shapes |= {shape_of_node(g, n) for n in g.nodes if g.nodes[n]["op"].kind == "conv"}
    return sorted(shapes, key=lambda s: (s.macs, s.text()))


def check(mod, sh: ConvShape, n: int, seed: int, names: list[str] | None = None) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sh.C, sh.H, sh.W)).astype(np.float32)
    w = rng.standard_normal((sh.K, sh.C // sh.G, sh.k, sh.k)).astype(np.float32)
    b = rng.standard_normal(sh.K).astype(np.float32)
    relu = bool(seed % 2)
    # every other seed pair: a fused residual (fuse_add) in the epilogue, before the ReLU
    z = rng.standard_normal((n, sh.K, sh.Ho, sh.Wo)).astype(np.float32) if seed % 4 >= 2 else None
    ref = harness.reference(sh, x, w, b, relu, z)
    errs = {}
    for name in names or eligible(sh):
        y = harness.run(mod, name, sh, x, w, b, relu, residual=z)
        errs[name] = harness.rel_err(y, ref)
        if z is not None and sh.G == 1:  # the schedule overwrites a residual read by this conv alone in place
            y = harness.run(mod, name, sh, x, w, b, relu, residual=z, in_place=True)
            errs[f"{name} in place"] = harness.rel_err(y, ref)
    return errs


@pytest.mark.parametrize("sh", [pytest.param(s, id=s.text().replace(" ", ""),
                                             marks=[pytest.mark.slow] if s.macs > SLOW_MACS else [])
                                for s in arch_shapes()])
def test_every_strategy_on_every_arch_conv_shape(mod, sh: ConvShape) -> None:
    n = 2 if sh.macs < 20_000_000 else 1
    errs = check(mod, sh, n, seed=sh.macs % 1000)
    assert "im2col" in errs
    assert all(e <= TOL for e in errs.values()), errs


def test_the_blocks_over_output_channels_compile_once(mod) -> None:
    """Their unrolled blocks are most of a module's cold compile: direct1x1_oc and im2col_oc, into NCHW (staged or
    over several passes), must share one compiled _oc_blocks (a literal 0 or 1 among its arguments had compiled it
    once more, and helpers around it twice more: NiN's cold compile 12.9 s -> 25.9)."""
    for sh in (ConvShape(64, 6, 6, 64, 6, 6, 1, 1, 0, 1), ConvShape(8, 6, 6, 40, 6, 6, 3, 1, 1, 1),
               ConvShape(128, 7, 7, 48, 7, 7, 3, 1, 1, 1)):  # 1152 input rows: two passes
        errs = check(mod, sh, 1, seed=2, names=["direct1x1_oc"] if sh.k == 1 else ["im2col_oc"])
        assert all(e <= TOL for e in errs.values()), errs
    assert len(mod._oc_blocks.signatures) == 1, mod._oc_blocks.signatures
    # inlined where it is called (Numba's inline="always"): a function of its own made LLVM optimise the blocks once
    # more for it (NiN's cold compile 13.1 s -> 15.6-17.5)
    assert not mod._oc_block_runs.signatures, mod._oc_block_runs.signatures


def test_the_threads_share_the_blocks_over_output_channels_evenly(mod) -> None:
    """At batch 1 the threads split the (panel, block of pixels) units into runs of near-equal work, cutting inside a
    panel where whole panels would not share out: 11 panels of 48 for 512 channels had left one thread 288 channels and
    the other 224 (im2col_oc on 512x7x7 -> 512 at batch 1, two threads: 1.34 ms warm, 1.25 after)."""
    lanes = mod._OC_LANES
    for wide in (False, True):
        width = mod._oc_panel_width(wide)
        pixels = mod._OC_WIDE_PIXELS if wide else mod._OC_PIXELS
        for K in (16, 40, 64, 100, 136, 256, 320, 512, 1000, 1024):
            for M in (1, 36, 49, 196):
                panels, nb = -(-K // width), -(-M // pixels)
                cost = [-(-min(width, K - kb * width) // lanes) for kb in range(panels)]
                for T in (2, 3):
                    parts = mod._unit_parts(K, M, wide, 1, T)
                    assert parts[0][2] == 0 and parts[-1][3] == panels * nb
                    assert all(a[3] == b[2] for a, b in itertools.pairwise(parts))  # contiguous runs
                    assert all(p[2] < p[3] for p in parts)  # none empty
                    work = [sum(cost[u // nb] for u in range(u0, u1)) for _, _, u0, u1 in parts]
                    assert max(work) - sum(work) / T <= max(cost), (K, M, wide, T, parts)
    parts = mod._unit_parts(512, 49, False, 1, 2)
    assert parts[1][2] % 7 != 0  # the cut falls inside a panel
    assert mod._unit_parts(512, 49, False, 2, 2) == [(0, 1, 0, 77), (1, 2, 0, 77)]  # a batch: an image each
    # the cut inside a panel, with a residual, over two passes of input rows (1152 of them), into NCHW
    mod.set_num_threads(3)
    try:
        for sh in (ConvShape(128, 7, 7, 100, 7, 7, 3, 1, 1, 1), ConvShape(64, 9, 9, 100, 9, 9, 1, 1, 0, 1)):
            errs = check(mod, sh, 1, seed=2, names=["direct1x1_oc"] if sh.k == 1 else ["im2col_oc"])
            assert all(e <= TOL for e in errs.values()), errs
    finally:
        mod.set_num_threads(2)


def test_the_blocks_ask_for_their_lines_ahead(mod) -> None:
    """The prefetch hints are the blocks' only defence against inputs and outputs that are not in the caches (a
    chunk's first block of channels reads its input from memory; every block stores into new lines): direct1x1's
    blocks ask for input lines and for output lines to write, the blocks over output channels for the next group's
    input and, into L2, for the weights the next panel will read. A hint changes no answer, so only the compiled code
    shows it was lost."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(mod, "_PREFETCH_PANELS", True)  # the harness's weights fit any cache: the hints would be off
        for sh in (ConvShape(16, 6, 6, 16, 6, 6, 1, 1, 0, 1), ConvShape(40, 7, 7, 100, 7, 7, 3, 1, 1, 1)):
            errs = check(mod, sh, 1, seed=3, names=["direct1x1", "direct1x1_oc"] if sh.k == 1 else ["im2col_oc"])
            assert all(e <= TOL for e in errs.values()), errs

    def hints(kernel) -> set[str]:
        ir = "".join(kernel.inspect_llvm().values())
        kinds = {", i32 1, i32 3, i32 1)": "write", ", i32 0, i32 3, i32 1)": "read",
                 ", i32 0, i32 2, i32 1)": "read L2"}
        return {next((k for a, k in kinds.items() if a in line), "other")
                for line in ir.splitlines() if "call void @llvm.prefetch" in line}

    assert hints(mod._direct1x1) == {"read", "write"}
    # the next group's input, and (into L2) the weights of the next panel (_next_panel_lines)
    assert hints(mod._direct1x1_oc) == {"read", "read L2"}


def test_the_weights_are_asked_for_ahead_where_they_outgrow_the_last_level_cache(mod) -> None:
    """Where a network's weights fit the last-level cache the hints only cost instructions (MobileNet at batch 8: 2%),
    so a module asks for the next panel's weights only where they do not: VGG16's 553 MB do, the harness's do not."""
    llc = mod._last_level_cache_bytes()
    if llc == 0:
        pytest.skip("the OS does not say how large the caches are")
    assert 1 << 15 <= llc < 1 << 30
    assert not mod._PREFETCH_PANELS
    vgg = import_path(ROOT / "generated" / "vgg16_cpu.py")  # imported only: nothing compiles before a call
    assert vgg._WEIGHT_BYTES == 4 * 138_357_544 and vgg._PREFETCH_PANELS  # VGG16 parameters (Simonyan & Zisserman)


@pytest.mark.slow
def test_kernel_ab_script_times_versions_warm_and_cold(mod, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """benchmarks/kernel_ab.py: the harness module and a copy of it, one strategy on one shape, four phases (warm and
    cold twice), a median and a ratio per version; a strategy that cannot run the shape is refused."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("kernel_ab_script", ROOT / "benchmarks" / "kernel_ab.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    copy = tmp_path / "copy_kernel_harness_cpu.py"
    shutil.copy(mod.__file__, copy)
    args = ["--shape", "16,7,7,40,7,7,3,1,1,1", "--strategy", "im2col_oc", "--seconds", "0.05"]
    before = mod._PREFETCH_PANELS
    try:
        script.main([*args, "--prefetch-panels", "on", mod.__file__, str(copy)])
        assert mod._PREFETCH_PANELS
    finally:
        mod._PREFETCH_PANELS = before
    rows = capsys.readouterr().out.splitlines()
    assert [r.split(":")[0] for r in rows] == ["warm", "cold", "warm", "cold"]
    assert all(r.count(" ms (") == 2 and "(1.000)" in r for r in rows)
    with pytest.raises(SystemExit):
        script.main([*args[:2], "--strategy", "winograd4", "--shape", "16,7,7,40,4,4,3,2,1,1", mod.__file__,
                     str(copy)])


@st.composite
def conv_shapes(draw) -> tuple[ConvShape, int]:
    depthwise = draw(st.booleans())
    c = draw(st.integers(1, 6))
    g = c if depthwise else draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
    k_out = g * draw(st.integers(1, 3))
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, (k - 1) // 2 + 1))
    h = draw(st.integers(max(1, k - 2 * p), 13))
    w = draw(st.integers(max(1, k - 2 * p), 13))
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if draw(st.booleans()):  # the shapes Winograd and gemm1x1 take
        k, s, g, k_out = draw(st.sampled_from([(3, 1, 1, k_out), (1, 1, 1, k_out), (5, 1, 1, k_out)]))
        # 5x5: any padding up to 2 that leaves an output pixel
        p = {3: 1, 1: 0}.get(k) if k != 5 else draw(st.integers(max(0, -(-(5 - min(h, w)) // 2)), 2))
        ho, wo = h + 2 * p - k + 1, w + 2 * p - k + 1
    return ConvShape(c, h, w, k_out, ho, wo, k, s, p, g), draw(st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_shapes(), seed=st.integers(0, 2**16))
def test_every_strategy_on_random_shapes(mod, case: tuple[ConvShape, int], seed: int) -> None:
    sh, n = case
    errs = check(mod, sh, n, seed)
    assert all(e <= TOL for e in errs.values()), (sh, n, errs)


@pytest.mark.parametrize(("sh", "n"), [
    (ConvShape(192, 6, 6, 96, 6, 6, 3, 1, 1, 3), 1),  # split by output channels across a group's middle
    (ConvShape(48, 9, 11, 36, 9, 11, 3, 1, 1, 3), 2),  # split by tile rows, every group per thread
    (ConvShape(16, 8, 8, 24, 6, 6, 5, 1, 1, 2), 3),  # F(2x2, 5x5), grouped, padding 1
    pytest.param(ConvShape(96, 27, 27, 256, 27, 27, 5, 1, 2, 2), 1, marks=pytest.mark.slow),  # AlexNet's conv2
])
def test_winograd_on_grouped_convs(mod, sh: ConvShape, n: int) -> None:
    """One GEMM per group and transformed element; the threads' output channel bands may cut a group."""
    names = [v for v in ("winograd", "winograd4", "winograd5x5") if STRATEGIES[v].eligible(sh) is None]
    assert names
    for seed in (0, 3):
        errs = check(mod, sh, n, seed, names)
        assert set(errs) == set(names) and all(e <= TOL for e in errs.values()), errs


@pytest.mark.parametrize("threads", [2, 3])
def test_winograd_threads_share_the_input_transform_of_one_band(mod, monkeypatch: pytest.MonkeyPatch,
                                                                 threads: int) -> None:
    """Split by output channels over a single band, the threads first transform a share of the input channels each,
    into one V, then multiply it by their shares of U: two runs of the kernel, the first with no output channels."""
    runs: list[list[tuple]] = []
    real = mod._WORKERS.run

    def run(fn, calls, serve=False):
        parts = [c[18:22] + c[-2:] for c in calls]  # (r0, r1, k0, k1, ca, cb) of each part
        if not runs or runs[-1] != parts:  # (a run outside a call starts one, and runs itself again)
            runs.append(parts)
        real(fn, calls, serve)

    mod.set_num_threads(threads)
    monkeypatch.setattr(mod._WORKERS, "run", run)
    try:
        for sh in (ConvShape(40, 10, 10, 96, 10, 10, 3, 1, 1, 1), ConvShape(48, 12, 12, 64, 12, 12, 3, 1, 1, 2)):
            for name in ("winograd", "winograd4"):
                runs.clear()
                errs = check(mod, sh, 1, seed=2, names=[name])
                assert all(e <= TOL for e in errs.values()), (sh, name, errs)
                transform, products = runs[0], runs[1]
                assert [(ca, cb) for *_, ca, cb in transform] == mod._split(sh.C, threads)
                assert all(k0 == k1 == 0 for _, _, k0, k1, _, _ in transform)
                assert [(k0, k1) for _, _, k0, k1, _, _ in products] == mod._split(sh.K, threads)
                assert all(ca == cb for *_, ca, cb in products)
    finally:
        monkeypatch.undo()
        mod.set_num_threads(2)


def test_winograd_refuses_groups_of_few_channels() -> None:
    sh = ConvShape(32, 9, 9, 32, 9, 9, 3, 1, 1, 8)  # 4 channels a group
    assert STRATEGIES["winograd"].eligible(sh) == "needs at least 8 input and output channels per group"
    assert decide(ConvShape(32, 56, 56, 32, 56, 56, 3, 1, 1, 32)) == Choice("depthwise")


def test_every_strategy_is_exercised_by_the_random_shapes() -> None:
    # the generator reaches every strategy's eligibility (shapes it would draw)
    shapes = [ConvShape(4, 9, 9, 8, 9, 9, 3, 1, 1, 1), ConvShape(4, 9, 9, 8, 9, 9, 1, 1, 0, 1),
              ConvShape(4, 9, 9, 8, 5, 5, 3, 2, 1, 4), ConvShape(4, 9, 9, 8, 7, 7, 5, 1, 1, 1),
              ConvShape(4, 9, 9, 4, 5, 5, 3, 2, 1, 4)]
    assert set().union(*(eligible(s) for s in shapes)) == set(STRATEGIES)


def test_a_whole_model_with_every_strategy_matches_the_reference(mod) -> None:
    # the harness module's own network forces each strategy on one layer: Model's call lines and transforms
    g = harness.graph()
    params = cparams.random(g, seed=4)
    model = mod.Model(params)
    assert all(any(k.endswith(f"#{v}") for k in model.W)  # transformed once, at construction
               for v in ("winograd", "winograd4", "winograd5x5"))
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, *mod.INPUT_SHAPE)).astype(np.float32)
        ref = run(g, params, x)
        assert harness.rel_err(model(x), ref) <= TOL



# --- the cost model --------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "expected"), [
    (ConvShape(32, 112, 112, 32, 112, 112, 3, 1, 1, 32), "depthwise"),  # MobileNet dw1
    (ConvShape(512, 14, 14, 512, 7, 7, 3, 2, 1, 512), "depthwise_oc"),  # MobileNet dw12: strided, small (0.29x)
    # 1x1: register blocks on large images; on 7x7 ones, where they waste lanes, blocks vectorised over output
    # channels (measured, 2-core AMD EPYC, ms at batch 1 / 8, direct1x1 against gemm1x1: ResNet-50 layer1 reduction
    # 1.02/8.3 against 1.29/8.4, MobileNet dw1 0.63/5.0 against 0.92/6.1; 1024x7x7 -> 1024, ms per image at batch
    # 1 / 8: direct1x1_oc 0.64/0.56 against im2col 0.76/0.61)
    (ConvShape(64, 56, 56, 256, 56, 56, 1, 1, 0, 1), "direct1x1"),  # ResNet-50 expansion
    # ... but the reduction into 64 channels (one wide panel) runs the blocks over output channels since their NCHW
    # output is staged rather than scattered (ms per image, mean of batch 1 and 8: 0.563 against direct1x1's 0.611)
    (ConvShape(256, 56, 56, 64, 56, 56, 1, 1, 0, 1), "direct1x1_oc"),  # ResNet-50 reduction
    (ConvShape(32, 112, 112, 64, 112, 112, 1, 1, 0, 1), "direct1x1"),  # MobileNet dw1: packing dominates BLAS
    (ConvShape(1024, 7, 7, 1024, 7, 7, 1, 1, 0, 1), "direct1x1_oc"),  # MobileNet dw13: 49 pixels, 64 lanes
    (ConvShape(512, 14, 14, 512, 14, 14, 1, 1, 0, 1), "direct1x1_oc"),  # ... 0.60/0.58 against direct1x1 0.61/0.61
    # in wide panels (64 channels x 6 pixels) where many input channels pay for the store into NCHW (ms at batch
    # 1 / 8: ResNet-50 1024->256 on 14x14 0.59/4.31 against direct1x1 0.66/5.16; 256->512 on 14x14 0.35/2.37
    # against 0.35/2.47); not where few do (the 64->256 expansion above: 0.97/8.42 against 0.72/6.00)
    (ConvShape(256, 14, 14, 512, 14, 14, 1, 1, 0, 1), "direct1x1_oc"),
    (ConvShape(1024, 14, 14, 256, 14, 14, 1, 1, 0, 1), "direct1x1_oc"),
    # Winograd: F(4x4) where tiles are many (4x fewer multiplies), F(2x2) on small images (a 4x4 tile wastes
    # more of a 14x14 or 7x7 image; benchmarks/kernels.py measured F(2x2) 1.5x faster on 512x14x14)
    (ConvShape(256, 56, 56, 256, 56, 56, 3, 1, 1, 1), "winograd4"),  # VGG16 stage 3
    (ConvShape(128, 28, 28, 128, 28, 28, 3, 1, 1, 1), "winograd4"),  # ResNet-50 layer2 3x3
    (ConvShape(64, 56, 56, 64, 56, 56, 3, 1, 1, 1), "winograd4"),  # ResNet-18 layer1: vectorised transforms pay
    (ConvShape(512, 14, 14, 512, 14, 14, 3, 1, 1, 1), "winograd"),  # VGG16 stage 5
    # F(2x2, 5x5): 5x5 stride-1 convs (cnnc tune, 2-core AMD EPYC, batch 1/8 ms: conv5x5 1.6/16.3 against kn2row
    # 3.3/27.9 and im2col 6.5/46.7; NiN mlp2 7.7/64.5 against 13.4/94.2 and 11.0/93.8); on 7x7 images, im2col's
    # columns in blocks vectorised over output channels (ms per image at batch 1 / 8: 0.13/0.080 against im2col
    # 0.17/0.084)
    (ConvShape(192, 28, 28, 32, 28, 28, 5, 1, 2, 1), "winograd5x5"),  # the lecture's conv5x5
    (ConvShape(96, 27, 27, 256, 27, 27, 5, 1, 2, 1), "winograd5x5"),  # NiN mlp2
    (ConvShape(32, 7, 7, 128, 7, 7, 5, 1, 2, 1), "im2col_oc"),  # GoogLeNet i5a
    (ConvShape(256, 13, 13, 384, 13, 13, 3, 1, 1, 1), "winograd"),  # ZFNet conv3
    # im2col's gather, then register blocks instead of BLAS, which packs more than it multiplies when the columns
    # have few rows (measured, 2-core AMD EPYC, ms at batch 1 / 8, against im2col: VGG16 conv1_1 1.11/10.0 against
    # 1.77/15.4, AlexNet conv1 1.31/10.4 against 1.43/11.3, ResNet-18 layer2 3x3/2 0.73/5.8 against 0.78/6.4); the
    # blocks over output channels waste no lanes on 7x7 outputs (ResNet-18 layer4 3x3/2, ms per image at batch 1 / 8,
    # im2col_oc 1.18/0.76 against im2col 1.30/0.78), and they ran faster than im2col_blocked on the strided convs'
    # larger outputs too (ResNet-18 layer2 3x3/2, ms per image at batch 1 on two threads, which share the gather,
    # 0.64 against 0.69; on one thread at batch 2 1.20-1.22 against 1.31-1.34)
    # a first conv (3 input channels) reads its taps from phase planes, no gather (measured, 2-core AMD EPYC, ms per
    # image at batch 1 on one thread / batch 8 on two, against im2col_blocked: ResNet conv1 2.33/1.17 against
    # 2.82/1.48, AlexNet conv1 2.32/1.17 against 2.48/1.28, MobileNet conv1 0.25/0.18 against 0.32/0.23, VGG16 conv1_1
    # 2.19/1.11 against 2.13/1.22)
    (ConvShape(3, 224, 224, 64, 224, 224, 3, 1, 1, 1), "direct"),  # VGG16 conv1_1: no Winograd either
    (ConvShape(3, 227, 227, 96, 55, 55, 11, 4, 0, 1), "direct"),  # AlexNet conv1
    (ConvShape(3, 224, 224, 64, 112, 112, 7, 2, 3, 1), "direct"),  # ResNet conv1
    (ConvShape(64, 56, 56, 128, 28, 28, 3, 2, 1, 1), "im2col_oc"),  # strided 3x3: no Winograd
    (ConvShape(256, 56, 56, 512, 28, 28, 1, 2, 0, 1), "im2col_oc"),  # ResNet-50 layer2 projection, 1x1/2
    (ConvShape(256, 14, 14, 512, 7, 7, 3, 2, 1, 1), "im2col_oc"),  # ResNet-18 layer4, strided, 7x7 output
    # grouped: Winograd per group when the groups hold 8 channels or more (cnnc tune, 2-core AMD EPYC, batch 1/8 ms:
    # AlexNet conv2 2.2/16.7 against im2col 3.1/30.3, conv4 1.8/10.5 against 2.1/13.5, conv5 0.8/6.4 against 1.2/8.0)
    (ConvShape(96, 27, 27, 256, 27, 27, 5, 1, 2, 2), "winograd5x5"),  # AlexNet conv2
    (ConvShape(384, 13, 13, 384, 13, 13, 3, 1, 1, 2), "winograd"),  # AlexNet conv4
    (ConvShape(32, 28, 28, 32, 28, 28, 3, 1, 1, 8), "im2col"),  # 4 channels a group: no Winograd
])
def test_cost_model_choices(shape: ConvShape, expected: str) -> None:
    assert choose(shape) == expected


def test_choice_never_picks_an_ineligible_strategy() -> None:
    for sh in arch_shapes():
        assert STRATEGIES[choose(sh)].eligible(sh) is None
        assert all(STRATEGIES[name].eligible(sh) is None for name in decide(sh).names())


# --- a second strategy for small batches ---------------------------------------------------------

@pytest.mark.parametrize(("shape", "expected"), [
    # 7x7 and 6x6 images: blocks vectorised over output channels at every batch size. The Winograds' GEMMs grow
    # less thin with the batch, and on a Zen 4 EPYC they won at batch 8 (ms per image at batch 1 / 8: 512x7x7 im2col_oc
    # 1.77/1.57 against winograd4 3.09/1.38; NiN mlp4 2.28/1.75 against winograd 3.89/1.49), but on a Zen 5 EPYC
    # im2col_oc won at batch 8 too (0.62/0.55 against winograd4 -/0.92; mlp4 0.69/0.58 against winograd 0.98/0.66):
    # the switch at large batches needs an estimated gain of LARGE_BATCH_GAIN, more than these (see below)
    (ConvShape(512, 7, 7, 512, 7, 7, 3, 1, 1, 1), Choice("im2col_oc")),  # ResNet-18/50 layer4
    (ConvShape(384, 6, 6, 1024, 6, 6, 3, 1, 1, 1), Choice("im2col_oc")),  # NiN mlp4
    (ConvShape(160, 7, 7, 320, 7, 7, 3, 1, 1, 1), Choice("im2col_oc")),  # GoogLeNet i5a: 0.55/0.33, best at both
    # one strategy: clearly best at every batch size, or a tie at batch 1 (a 1x1 conv is the same GEMM either way)
    (ConvShape(64, 56, 56, 64, 56, 56, 3, 1, 1, 1), Choice("winograd4")),
    # a 1x1 conv of a 7x7 image: blocks vectorised over output channels at every batch size
    (ConvShape(1024, 7, 7, 1024, 7, 7, 1, 1, 0, 1), Choice("direct1x1_oc")),
    # ... and in wide panels where many input channels pay for their scatter into NCHW (ResNet-50's 512->128 on
    # 28x28, ms at batch 1 / 8: 0.56/4.34 against direct1x1 0.57/4.74)
    (ConvShape(512, 28, 28, 128, 28, 28, 1, 1, 0, 1), Choice("direct1x1_oc")),
    (ConvShape(96, 27, 27, 256, 27, 27, 5, 1, 2, 1), Choice("winograd5x5")),
])
def test_small_batch_choices(shape: ConvShape, expected: Choice) -> None:
    assert decide(shape) == expected
    assert decide(shape, "im2col") == Choice("im2col")  # forced: one strategy at every batch size


def test_large_batches_switch_where_the_estimated_gain_is_large_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    # ResNet's 512x7x7 3x3: F(4x4) is estimated about 40% cheaper at batch 8 than im2col_oc, which is cheaper at batch
    # 1 and over both together; with a smaller margin the large batches run it, the small ones im2col_oc
    import cnnc.codegen.kernels as kernels

    sh = ConvShape(512, 7, 7, 512, 7, 7, 3, 1, 1, 1)
    monkeypatch.setattr(kernels, "LARGE_BATCH_GAIN", 0.1)
    assert decide(sh) == Choice("winograd4", "im2col_oc", 5)
    monkeypatch.setattr(kernels, "LARGE_BATCH_GAIN", 0.9)
    assert decide(sh) == Choice("im2col_oc")


def test_choice_at_each_batch_size_and_its_text() -> None:
    c = Choice("winograd", "im2col", 3)
    assert [c.at(n) for n in (1, 2, 3, 64)] == ["im2col", "im2col", "winograd", "winograd"]
    assert c.names() == ("im2col", "winograd") and Choice("kn2row").names() == ("kn2row",)
    assert c.text() == "winograd (im2col at batch 1-2)"
    assert Choice("winograd", "im2col", 2).text() == "winograd (im2col at batch 1)"
    assert Choice("im2col").text() == "im2col"
    # the small-batch strategy runs below the first batch size at which the main one is estimated no dearer
    sh = ConvShape(128, 6, 6, 64, 6, 6, 3, 1, 1, 1)
    d = decide(sh)
    assert d.small is not None
    est = {n: STRATEGIES[n].cost for n in d.names()}
    assert all(est[d.small](sh, n) < est[d.kernel](sh, n) for n in range(1, d.below))
    assert est[d.kernel](sh, d.below) <= est[d.small](sh, d.below)


def test_a_module_switches_strategy_with_the_batch_size(tmp_path: Path) -> None:
    """A conv whose choice splits runs im2col_blocked's kernel at batch 1 and 2 and Winograd's from batch 3, all
    right (a 6x6 image: 9 Winograd tiles, thin GEMMs at small batches)."""
    b = GraphBuilder("split", (128, 6, 6))
    y = b.layer("relu", b.layer("conv", b.input, filters=64, kernel=3, pad=1))
    g = b.finish(b.layer("conv", y, filters=8, kernel=1))
    assert decide(shape_of_node(g, "conv1")) == Choice("winograd", "im2col_blocked", 3)
    mod = import_path(write(g, "cpu", tmp_path))
    src = (tmp_path / "split_cpu.py").read_text()
    assert "[kernel: winograd (im2col_blocked at batch 1-2)]" in src
    assert "        if n < 3:\n            conv2d_blocked(" in src
    params = cparams.random(g, seed=5)
    model = mod.Model(params)
    for n, kernel in ((1, "_conv2d_blocked"), (2, "_conv2d_blocked"), (3, "_winograd2")):
        x = np.random.default_rng(n).standard_normal((n, 128, 6, 6)).astype(np.float32)
        ref = run(g, params, x)
        y = model(x)
        assert float(np.abs(y - ref).max() / np.abs(ref).max()) <= TOL, n
        ran = [fn.__name__ for fn, _ in mod._WORKERS.record(lambda x=x: model(x))]  # what a call runs, not run
        assert ran[0] == kernel, (n, ran)


# --- forcing -----------------------------------------------------------------------------------

def resnet18():
    return run_pipeline(load(ARCHS / "resnet18.cnn"), 1, log=None)


def test_force_everywhere_and_per_layer() -> None:
    g = resnet18()
    forced = resolve(g, ["im2col", "layer1_1/b1/conv1=winograd"])
    convs = [n for n in g.nodes if g.nodes[n]["op"].kind == "conv"]
    assert set(forced) == set(convs)
    assert forced["layer1_1/b1/conv1"] == "winograd" and forced["layer1_1/b1/conv2"] == "im2col"
    g.graph["kernels"] = forced
    assert choices(g) == {n: Choice(k) for n, k in forced.items()}  # forced: one strategy at every batch size
    src = generate(g, "cpu")
    assert "layer1_1/b1/conv1 conv 3x3 +relu: 64x56x56 -> 64x56x56 [kernel: winograd]" in src
    # (the block's residual add and ReLU are fused into its second conv: its inputs are the conv's and the residual,
    # which it overwrites)
    assert ("layer1_1/b1/conv2 conv 3x3 +residual +relu (in place): 64x56x56, 64x56x56 -> 64x56x56 [kernel: im2col]"
            in src)
    # forcing a strategy "everywhere" leaves the layers it cannot run to the cost model
    wino = resolve(g, ["winograd"])
    assert "conv1" not in wino and all(STRATEGIES["winograd"].eligible(shape_of_node(g, n)) is None for n in wino)


@pytest.mark.parametrize(("spec", "message"), [
    ("conv1=winograd", "cannot use winograd: needs a 3x3 kernel and stride 1"),
    ("layer1_1/b1/conv1=depthwise", "cannot use depthwise"),
    ("depthwise", "no conv layer of 'resnet18' can use it"),
    ("fast", "unknown strategy 'fast'; strategies: im2col, gemm1x1, direct1x1, im2col_blocked, direct, "
             "direct1x1_oc, im2col_oc, depthwise, depthwise_oc, winograd, winograd4, winograd5x5, kn2row"),
    ("pool1=im2col", "'pool1' is not a conv layer"),
])
def test_force_refuses_what_cannot_run(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        resolve(resnet18(), [spec])


def test_kernel_option_on_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    net = str(ARCHS / "mobilenet_v1.cnn")
    assert main(["inspect", net, "-O1", "--format", "json", "--kernel", "dw1/conv1=im2col"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    layers = {r["name"]: r["kernel"] for r in rows}
    assert layers["dw1/conv1"] == "im2col" and layers["dw2/conv1"] == "depthwise_oc"
    assert next(r for r in rows if r["name"] == "dw1/conv1")["kernel_small_batch"] is None  # forced: one strategy
    assert layers["dw1/conv2"] == "direct1x1" and layers["fc"] is None
    assert main(["compile", net, "-o", str(tmp_path), "--kernel", "conv1=winograd"]) == 2
    assert "cannot use winograd" in capsys.readouterr().err
    assert main(["compile", net, "-o", str(tmp_path), "--kernel", "im2col"]) == 0
    src = (tmp_path / "mobilenet_v1_cpu.py").read_text()
    # only the kernel templates used are emitted (the fc's register blocks bring their template's depthwise_oc)
    assert "[kernel: depthwise]" not in src and "def _depthwise(" not in src


# --- the depthwise kernel's paths ----------------------------------------------------------------

@pytest.mark.parametrize(("sh", "n", "threads"), [
    (ConvShape(5, 13, 11, 5, 13, 11, 3, 1, 1, 5), 1, 1),  # 3x3/1/p1: read where it lies, odd sizes
    (ConvShape(3, 2, 5, 6, 2, 5, 3, 1, 1, 3), 2, 1),  # 3x3/1/p1 with no middle row, channel multiplier 2
    (ConvShape(4, 6, 1, 4, 6, 1, 3, 1, 1, 4), 1, 1),  # one column: every left and right neighbour dropped
    (ConvShape(3, 1, 6, 3, 1, 6, 3, 1, 1, 3), 1, 1),  # one row: the phase planes
    (ConvShape(5, 13, 11, 5, 11, 9, 3, 1, 0, 5), 1, 1),  # 3x3/1 unpadded: the phase planes
    (ConvShape(6, 17, 15, 12, 9, 8, 3, 2, 1, 6), 2, 2),  # 3x3/2 through four phase planes, channel multiplier 2
    (ConvShape(4, 16, 19, 12, 6, 7, 5, 3, 2, 4), 3, 2),  # 5x5/3: one pass per tap, nine phase planes, K/C = 3
    (ConvShape(3, 10, 9, 6, 5, 4, 2, 2, 0, 3), 1, 1),  # an even kernel, no padding
    (ConvShape(4, 11, 13, 8, 6, 7, 5, 2, 2, 4), 2, 1),  # stride 2, even padding, odd width: a column left over
    (ConvShape(2, 9, 10, 2, 5, 5, 7, 2, 3, 2), 1, 1),  # stride 2, odd padding: column 0 alone
    (ConvShape(7, 9, 12, 7, 9, 12, 1, 1, 0, 7), 2, 1),  # 1x1: no border at all
    (ConvShape(33, 45, 45, 66, 45, 45, 3, 1, 1, 33), 1, 2),  # split by channels mid-group (1.2M MACs per image)
    (ConvShape(33, 45, 45, 66, 23, 23, 3, 2, 1, 33), 3, 2),  # split by images, strided
])
@pytest.mark.parametrize("band", [5, 2048])
def test_depthwise_paths(mod, monkeypatch: pytest.MonkeyPatch, sh: ConvShape, n: int, threads: int,
                         band: int) -> None:
    # band=5 elements: one output row per band (bands of R rows, the last one partial, are what 2048 gives
    # MobileNet's large planes: 112x114 -> 17 rows); every seed pair of check() covers relu and a fused residual
    from cnnc.codegen.kernels import depthwise

    monkeypatch.setattr(depthwise, "BAND", band)
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, ["depthwise"])
            assert errs["depthwise"] <= TOL, (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)


@pytest.mark.parametrize(("sh", "n", "threads"), [
    # 37 channels: two full groups of 16 (or four of 8 on AVX2) and a masked last one; 40 pixels a row: vectors of
    # pixels, the last masked, both as the tile is filled and as the output is stored
    (ConvShape(37, 11, 40, 37, 11, 40, 3, 1, 1, 37), 1, 2),  # split by channel groups
    (ConvShape(37, 11, 40, 37, 6, 20, 3, 2, 1, 37), 3, 2),  # split by images, strided
    (ConvShape(20, 8, 9, 20, 3, 3, 5, 3, 2, 20), 2, 1),  # 5x5/3: the kernel of any size (loops over the taps)
    (ConvShape(17, 6, 7, 17, 2, 3, 3, 2, 0, 17), 2, 1),  # unpadded: the windows reach neither the last row nor column
    (ConvShape(3, 1, 6, 3, 1, 6, 3, 1, 1, 3), 1, 1),  # one row, fewer channels than a vector
    (ConvShape(5, 4, 4, 5, 4, 4, 1, 1, 0, 5), 2, 1),  # 1x1
])
def test_depthwise_oc_edges(mod, sh: ConvShape, n: int, threads: int) -> None:
    # the output starts as NaN, so a lane the masks drop or a pixel a row misses shows; every seed pair of check()
    # covers relu and a fused residual
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, ["depthwise_oc"])
            assert errs and all(e <= TOL for e in errs.values()), (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)


@pytest.mark.parametrize(("sh", "n", "threads"), [
    # 36 output pixels a row: one vector-wide block and a masked one; 20 output channels: whole blocks, then single
    # rows; 3x3 stride 2: four phase planes, the taps' offsets in two of them per row of the window
    (ConvShape(3, 30, 72, 20, 15, 36, 3, 2, 1, 1), 2, 2),  # split by images
    (ConvShape(3, 40, 41, 10, 40, 41, 3, 1, 1, 1), 1, 2),  # stride 1: one plane; split by bands of rows
    (ConvShape(2, 20, 19, 9, 7, 7, 7, 3, 3, 1), 3, 1),  # 7x7/3, padding 3: nine planes
    (ConvShape(3, 47, 47, 17, 10, 10, 11, 4, 0, 1), 1, 1),  # 11x11/4 unpadded: 363 taps, three depth passes
    (ConvShape(4, 9, 9, 9, 9, 9, 1, 1, 0, 1), 2, 1),  # 1x1
    # 18 output pixels a row fill a block badly (18 of 48 lanes with AVX-512, 18 of 24 with AVX2), so rows run as
    # bands (without a residual): 11x11/4, split by bands of rows (5 + 4) and by images; 3x3/1 with padding
    (ConvShape(3, 43, 79, 20, 9, 18, 11, 4, 0, 1), 1, 2),
    (ConvShape(3, 43, 79, 20, 9, 18, 11, 4, 0, 1), 3, 2),
    (ConvShape(3, 12, 18, 17, 12, 18, 3, 1, 1, 1), 1, 1),
])
def test_direct_edges(mod, sh: ConvShape, n: int, threads: int) -> None:
    # the output starts as NaN, so a lane the masks drop or a pixel a row misses shows; every seed pair of check()
    # covers relu and a fused residual (also overwritten in place)
    if sh.Wo == 18:
        assert mod._direct_band(sh.Wo, sh.Wo + (sh.k - 1) // sh.s, direct.band_rows(sh)) > 1
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, ["direct"])
            assert errs and all(e <= TOL for e in errs.values()), (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)


def test_direct_bands_only_rows_that_fill_the_blocks_badly(mod) -> None:
    L = mod._BLOCK_LANES
    P = mod._BLOCK_VECTORS * L
    # _blocks' split: full blocks, a last block a vector wider, a masked block, a one-vector tail
    assert [mod._block_lanes(n) for n in (1, L, L + 1, P, P + 1, P + L, P + L + 1, 2 * P + 1)] == \
        [L, L, P, P, P + L, P + L, 2 * P, 2 * P + L]
    assert mod._direct_band(P, P + 2, 8) == 1  # a row fills whole blocks
    assert mod._direct_band(2 * P, 2 * P + 3, 8) == 1
    assert mod._direct_band(P + L - 2, P + L, 1) == 1  # no room for a band
    # a row a pixel past a block and a vector (two blocks, a third of their lanes idle; NiN's 54 pixels are 6 past a
    # block with AVX-512, a block a vector wider): the band that fills them best, ties to the taller
    wo = P + L + 1
    rows = mod._direct_band(wo, wo + 2, 6)
    fill = rows * wo / mod._block_lanes((rows - 1) * (wo + 2) + wo)
    assert rows > 1 and fill >= wo / mod._block_lanes(wo) + mod._BAND_GAIN
    assert all(r * wo / mod._block_lanes((r - 1) * (wo + 2) + wo) <= fill for r in range(2, 7))
    # the band a step may take is what its scratch holds beside the planes: 32768 elements of output rows
    assert direct.band_rows(ConvShape(3, 224, 224, 96, 54, 54, 11, 4, 0, 1)) == 32768 // (96 * 56)
    assert direct.band_rows(ConvShape(3, 43, 79, 20, 9, 18, 11, 4, 0, 1)) == 9  # every row of the image


def test_depthwise_oc_is_chosen_for_small_images_and_strides() -> None:
    # measured (one thread, batch 1, depthwise_oc against depthwise): MobileNet's 512x14x14 stride-2 layer 0.29x,
    # its 1024x7x7 0.40x, its 512x14x14 0.71x; its 128x56x56 1.19x and 32x112x112 1.17x (stride 1)
    assert decide(ConvShape(512, 14, 14, 512, 7, 7, 3, 2, 1, 512)) == Choice("depthwise_oc")
    assert decide(ConvShape(1024, 7, 7, 1024, 7, 7, 3, 1, 1, 1024)) == Choice("depthwise_oc")
    assert decide(ConvShape(512, 14, 14, 512, 14, 14, 3, 1, 1, 512)) == Choice("depthwise_oc")
    assert decide(ConvShape(128, 56, 56, 128, 56, 56, 3, 1, 1, 128)) == Choice("depthwise")
    assert decide(ConvShape(32, 112, 112, 32, 112, 112, 3, 1, 1, 32)) == Choice("depthwise")
    # a channel multiplier above 1 is the direct kernel's alone
    assert STRATEGIES["depthwise_oc"].eligible(ConvShape(8, 7, 7, 16, 7, 7, 3, 1, 1, 8)) is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_flat_path_at_the_buffers_edges(mod, monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    # the input's first channel at element 0 and its last at the buffer's end: the element either side that the
    # flat 3x3 path reads is outside the array there, so those channels take the phase planes
    monkeypatch.setattr(harness, "X_OFFSET", 0)
    monkeypatch.setattr(harness, "X_SLACK", 0)
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            sh = ConvShape(6, 9, 7, 6, 9, 7, 3, 1, 1, 6)
            errs = check(mod, sh, 2, seed, ["depthwise"])
            assert errs["depthwise"] <= TOL, (seed, errs)
    finally:
        mod.set_num_threads(2)


def test_depthwise_bands_cover_the_output() -> None:
    from cnnc.codegen.kernels.depthwise import band_rows, scratch_sizes

    dw1 = ConvShape(32, 112, 112, 32, 112, 112, 3, 1, 1, 32)  # MobileNet dw1
    assert band_rows(dw1) == 17 and scratch_sizes(dw1) == (114 * 114, 17 * 114)
    dw12 = ConvShape(512, 14, 14, 512, 7, 7, 3, 2, 1, 512)  # strided: four 8x8 phase planes, one band
    assert band_rows(dw12) == 7 and scratch_sizes(dw12) == (4 * 8 * 8, 7 * 8)


# --- direct1x1: the register blocks' edges -------------------------------------------------------

@pytest.mark.parametrize(("sh", "n", "threads"), [
    # 207 pixels: 4 full blocks and 15 in one masked vector; 21 channels: whole blocks, then single rows; 300 input
    # channels: three passes over the output (128, 128, 44), the last one applying the epilogue
    (ConvShape(300, 9, 23, 21, 9, 23, 1, 1, 0, 1), 1, 2),
    (ConvShape(300, 9, 23, 21, 9, 23, 1, 1, 0, 1), 3, 2),  # split by images
    (ConvShape(5, 1, 1, 3, 1, 1, 1, 1, 0, 1), 2, 1),  # one pixel, fewer channels than a block
    (ConvShape(8, 7, 7, 16, 7, 7, 1, 1, 0, 1), 1, 2),  # 49 = 48 + 1 pixels: one block a vector wider
    (ConvShape(8, 7, 7, 13, 7, 7, 1, 1, 0, 1), 2, 1),  # ... and its row tail
    (ConvShape(8, 14, 14, 16, 14, 14, 1, 1, 0, 1), 1, 1),  # 196 = 3 blocks + 52 pixels in a wide block
    (ConvShape(130, 40, 40, 24, 40, 40, 1, 1, 0, 1), 1, 2),  # 1600 pixels: several chunks in the first pass
])
def test_direct1x1_block_edges(mod, sh: ConvShape, n: int, threads: int) -> None:
    # the output starts as NaN, so a lane the masks drop or a row a block misses shows; every seed pair of check()
    # covers relu and a fused residual (also overwritten in place: the first pass reads it, the last stores)
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, ["direct1x1"])
            assert errs and all(e <= TOL for e in errs.values()), (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)


def test_direct1x1_register_block_follows_the_cpu_features(mod) -> None:
    # the block Numba compiles is the one the CPU features it targets hold registers for (test_portable_numerics
    # runs this under NUMBA_CPU_FEATURES without AVX-512, and under NUMBA_CPU_NAME=generic, which means no features)
    from numba.core import codegen, config

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    wide = "+avx512f" in features.split(",")
    assert (mod._BLOCK_ROWS, mod._BLOCK_VECTORS, mod._BLOCK_LANES) == ((8, 3, 16) if wide else (4, 3, 8))
    assert (mod._OC_PIXELS, mod._OC_VECTORS, mod._OC_LANES) == ((7, 3, 16) if wide else (5, 2, 8))


_OC_CASES = [
    # 130 output channels: two full panels of 48, then 34 (masked lanes); 1200 input rows: two passes (1024, 176),
    # the first storing partial sums, the second reading them back and applying the epilogue; 7x7: 7 blocks of 7
    (ConvShape(1200, 7, 7, 130, 7, 7, 1, 1, 0, 1), 1, 2),  # split by panels
    (ConvShape(1200, 7, 7, 130, 7, 7, 1, 1, 0, 1), 3, 2),  # split by images
    (ConvShape(20, 3, 4, 5, 3, 4, 1, 1, 0, 1), 2, 1),  # 12 pixels: a last block repeating its last pixel, unstored
    (ConvShape(7, 1, 1, 50, 1, 1, 1, 1, 0, 1), 1, 2),  # one pixel
]
_OC_IM2COL_CASES = [
    (ConvShape(33, 9, 9, 100, 5, 5, 3, 2, 1, 1), 2, 2),  # strided, 297 column rows
    (ConvShape(200, 6, 6, 64, 6, 6, 3, 1, 1, 1), 1, 2),  # 1800 column rows: two passes
]


@pytest.mark.parametrize(("sh", "n", "threads", "name"),
                         [(*c, name) for c in _OC_CASES for name in ("direct1x1_oc", "im2col_oc")]
                         + [(*c, "im2col_oc") for c in _OC_IM2COL_CASES])
def test_oc_block_edges(mod, sh: ConvShape, n: int, threads: int, name: str) -> None:
    # the output starts as NaN, so a lane the masks drop or a pixel a block misses shows; every seed pair of check()
    # covers relu and a fused residual (also overwritten in place: the first pass reads it, the last stores)
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, [name])
            assert errs and all(e <= TOL for e in errs.values()), (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)


def test_oc_panels_are_aligned_and_padded(mod) -> None:
    # each panel: output channel fastest, zero past K; the first element on a 64-byte boundary (a vector load that
    # straddles two cache lines cost the blocks 40%)
    w = np.arange(100 * 9, dtype=np.float32).reshape(100, 9)
    p = mod._oc_panels(w, 100)
    width = mod._OC_WIDTH
    assert p.shape == (-(-100 // width), 9, width) and p.ctypes.data % 64 == 0 and p.flags.c_contiguous
    assert np.array_equal(p.transpose(0, 2, 1).reshape(-1, 9)[:100], w)
    assert not p.transpose(0, 2, 1).reshape(-1, 9)[100:].any()


@pytest.mark.parametrize(("sh", "n", "threads"), [
    (ConvShape(3, 41, 37, 13, 21, 19, 3, 2, 1, 1), 1, 2),  # split by bands of output rows; 13 channels: a row tail
    (ConvShape(3, 41, 37, 13, 21, 19, 3, 2, 1, 1), 3, 2),  # split by images
    (ConvShape(40, 5, 4, 20, 3, 2, 3, 2, 1, 1), 1, 2),  # 3 output rows, few MACs: one thread, one tile
    (ConvShape(512, 3, 3, 260, 1, 1, 3, 1, 0, 1), 1, 2),  # one output row, 1.2M MACs: split by channel blocks
    (ConvShape(150, 12, 12, 9, 12, 12, 3, 1, 1, 1), 1, 1),  # 1350 column rows: 11 passes, the last one short
    (ConvShape(16, 14, 14, 24, 7, 7, 1, 2, 0, 1), 2, 1),  # 1x1 stride 2: a gather of every other pixel
])
def test_im2col_blocked_paths(mod, monkeypatch: pytest.MonkeyPatch, sh: ConvShape, n: int, threads: int) -> None:
    # tiles of 8 output rows at most (the last one partial) where the image has more; the output starts as NaN
    from cnnc.codegen.kernels import im2col_blocked

    monkeypatch.setattr(im2col_blocked, "TILE_PIXELS", 1)
    monkeypatch.setattr(im2col_blocked, "TILE_ELEMENTS", 8 * sh.C * sh.k * sh.k * sh.Wo)
    mod.set_num_threads(threads)
    try:
        for seed in range(4):
            errs = check(mod, sh, n, seed, ["im2col_blocked"])
            assert errs["im2col_blocked"] <= TOL, (sh, n, seed, errs)
    finally:
        mod.set_num_threads(2)
