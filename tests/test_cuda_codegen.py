"""The CUDA backend's lowering and the contract of the modules it writes (no GPU, no
simulator: these read the plan and the generated source)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cnnc.codegen import generate
from cnnc.codegen.cuda import OUTPUT_BUFFER, _Lowering, kernel_sources
from cnnc.codegen.cuda_launch import DEFAULT, KERNELS, SIGNATURES, GemmTiles
from cnnc.codegen.schedule import schedule
from cnnc.frontend import load, parse
from cnnc.graph import GraphBuilder
from cnnc.passes.manager import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = sorted(p.stem for p in (ROOT / "archs").glob("*.cnn"))


def _opt(name: str, level: int = 1):
    return run_pipeline(load(str(ROOT / "archs" / f"{name}.cnn")), level, log=None)


def _launches(g, n: int):
    """The launches a module makes for batch ``n`` (fc has a GEMV and a GEMM alternative)."""
    plan = schedule(g)
    low = _Lowering(plan, DEFAULT)
    out = []
    for s in plan.steps:
        for lc in low.lower(s):
            if not lc.when or eval(lc.when, {"n": n}):  # noqa: S307 - our own expressions
                out.append((s, lc))
    return plan, out


@pytest.mark.parametrize("name", NETWORKS)
def test_one_kernel_per_fused_layer_at_O1(name: str) -> None:
    """-O1 fuses ReLUs and writes concat branches in place: nothing launches but the layers."""
    g = _opt(name)
    for n in (1, 64):
        plan, launches = _launches(g, n)
        computing = [s for s in plan.steps if s.kind != "concat"]
        # a conv with a fused residual (fuse_add) adds it in its GEMM kernel's epilogue (one launch); only a
        # depthwise conv (dwconv, no residual epilogue) is followed by an add2 that adds it and applies the ReLU
        residual = [s for s in computing if s.op.get("residual")]
        separate = [s for s in residual if s.op["groups"] == s.inputs[0].shape[0] > 1]
        assert len(launches) == len(computing) + len(separate), [lc.kernel for _, lc in launches]
        sums = {s.node for s in computing if s.kind == "add"} | {s.node for s in separate}
        assert {s.node for s, lc in launches if lc.kernel == "add2"} == sums
        for s, lc in launches:
            if s in residual and lc.kernel in ("gemm", "conv_gemm"):
                assert lc.args[-1] == "_i(1)" and lc.args[-4] == f"B[{s.inputs[1].buffer!r}]"
        # no ReLU or copy kernels: a ReLU after a residual add is fused into the conv or the add (ResNet)
        assert not [s.node for s, lc in launches if lc.kernel == "channel_map"]
        # a depthwise conv (groups = input channels) runs the direct kernel, never the grouped GEMM
        for s, lc in launches:
            if s.kind == "conv" and s.op["groups"] == s.inputs[0].shape[0] > 1:
                assert lc.kernel in ("dwconv", "add2"), (s.node, lc.kernel)


def test_kernel_choice() -> None:
    g = _opt("alexnet")
    _, small = _launches(g, 1)
    _, big = _launches(g, 9)
    by_node = {s.node: lc for s, lc in small}
    assert by_node["conv1"].kernel == "conv_gemm"
    assert by_node["conv2"].grid.endswith(", 2)")  # groups=2: one grid slice per group
    assert by_node["fc6"].kernel == "gemv" and by_node["pool1"].kernel == "pool"
    assert {s.node: lc.kernel for s, lc in big}["fc6"] == "gemm"  # batch > 8: tiled GEMM
    _, gl = _launches(_opt("googlenet"), 1)
    kinds = {lc.kernel for s, lc in gl if s.kind == "conv" and s.op["kernel"] == 1}
    assert kinds == {"gemm"}  # every 1x1 conv (stride 1) is a plain GEMM


def test_concat_in_place_writes_channel_slices() -> None:
    g = _opt("inception_naive")
    plan, launches = _launches(g, 1)
    gemms = ("gemm", "conv_gemm")
    outs = [(lc.args[3], lc.args[-2]) if lc.kernel in gemms else (lc.args[1], lc.args[-1]) for _, lc in launches]
    # four branches, one buffer, four different channel offsets (element offsets per image)
    assert len({b for b, _ in outs}) == 1
    assert sorted(int(re.sub(r"\D", "", o)) for _, o in outs) == [0, 128 * 784, 320 * 784, 416 * 784]


def test_output_is_compacted_without_an_extra_launch() -> None:
    src = generate(_opt("googlenet"), "cuda")
    assert f"B[{OUTPUT_BUFFER!r}]" in src
    assert "copy the output out of its shared buffer" not in src


def test_O0_keeps_relu_and_concat_copies() -> None:
    g = _opt("inception_naive", level=0)
    _, launches = _launches(g, 1)
    maps = [lc for _, lc in launches if lc.kernel == "channel_map"]
    assert len(maps) == 3 + 4  # three ReLUs, four concat copies


def test_generation_is_deterministic_and_valid_python() -> None:
    g = _opt("googlenet")
    a, b = generate(g, "cuda"), generate(g, "cuda")
    assert a == b
    tree = ast.parse(a)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert {"init_params", "load_params", "save_params", "forward", "Model"} <= names
    assert {"conv_gemm", "gemm", "gemv", "pool"} <= names
    assert "lrn" in names and "softmax" in names


@pytest.mark.parametrize("name", NETWORKS)
def test_module_contract_in_the_source(name: str) -> None:
    src = (ROOT / "generated" / f"{name}_cuda.py").read_text()
    assert "import torch" not in src and "import cnnc" not in src
    imports = {m for m in re.findall(r"^(?:from|import) (\w+)", src, flags=re.M)}
    assert imports <= {"collections", "math", "os", "sys", "threading", "warnings", "zipfile", "numpy", "numba"}
    call = src[src.index("    def __call__"):src.index("def forward")]
    assert call.count("copy_to_device") == 1 and call.count("copy_to_host") == 1
    init = src[src.index("    def __init__"):src.index("    def _plan")]
    assert "cuda.to_device" in init  # weights go to the device once, when the model is built
    rest = src.replace(init, "")
    assert "cuda.to_device" not in rest
    assert re.search(r"^KERNELS = \{", src, flags=re.M)
    for k in re.findall(r"^    '(\w+)': \{\"threads\"", src, flags=re.M):
        assert k in KERNELS


def test_small_graph_from_builder_generates() -> None:
    b = GraphBuilder("tiny", (3, 8, 8))
    x = b.layer("conv", b.input, filters=4, kernel=3, pad=1)
    x = b.layer("relu", x)
    x = b.layer("gap", x)
    g = b.finish(x)
    src = generate(g, "cuda")
    assert "conv_gemm" in src and "def gap" in src and "gemv" not in src


def test_unsupported_tiles_are_rejected() -> None:
    with pytest.raises(ValueError):
        GemmTiles(tm=40, tn=64, tk=16, tx=16, ty=16)  # 40 outputs do not split over 16 thread rows
    with pytest.raises(ValueError):
        GemmTiles(tm=64, tn=48, tk=16, tx=16, ty=16)  # 256 threads do not split over 48 tile columns


def test_every_kernel_has_a_signature_and_renders_alone() -> None:
    src = kernel_sources()
    assert set(src) == set(KERNELS) == set(SIGNATURES)
    for name, text in src.items():
        tree = ast.parse(text)
        fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert [f.name for f in fns] == [name]
        assert len(fns[0].args.args) == len(SIGNATURES[name])


def test_parse_roundtrip_reduced_lesson() -> None:
    text = (ROOT / "archs" / "conv5x5_bottleneck.cnn").read_text().replace("192x28x28", "8x4x4")
    g = run_pipeline(parse(text), 1, log=None)
    _, launches = _launches(g, 1)
    assert [lc.kernel for _, lc in launches] == ["gemm", "conv_gemm"]


def test_small_launch_warnings_of_numba_and_numba_cuda_are_both_silenced() -> None:
    """numba-cuda 0.30 warns about a launch of few blocks with its own NumbaPerformanceWarning,
    not a subclass of Numba's; on an H200 every small layer printed one until the module
    silenced both classes around its launches."""
    import warnings

    from cnnc.codegen.loader import import_path

    mod = import_path(ROOT / "generated" / "lenet5_cuda.py")
    classes = [pytest.importorskip("numba.core.errors").NumbaPerformanceWarning]
    try:
        from numba.cuda.core.errors import NumbaPerformanceWarning as CudaWarning
    except ImportError:
        CudaWarning = None
    if CudaWarning is not None:
        classes.append(CudaWarning)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for category in mod.PERFORMANCE_WARNINGS:
            warnings.simplefilter("ignore", category)
        for cls in classes:
            warnings.warn(cls("Grid size 1 will likely result in GPU under-utilization"), stacklevel=1)
    assert seen == []
