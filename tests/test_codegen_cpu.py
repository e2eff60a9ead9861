"""Generated CPU modules against the float64 reference executor, and their contract.

Every network of archs/ is checked through its committed module in generated/ (built at
-O1; Numba's cache beside it makes reruns cheap). Small graphs built here cover every
kernel and annotation at -O0 and -O1, compiled into a temporary directory.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from numerics import TOL32, rel_err

from cnnc import params as cparams
from cnnc.codegen import generate, write
from cnnc.codegen.kernels import winograd
from cnnc.codegen.loader import import_path
from cnnc.frontend import load
from cnnc.graph import GraphBuilder, param_specs
from cnnc.passes.manager import run_pipeline
from cnnc.runtime.reference import run

ROOT = Path(__file__).resolve().parents[1]
NETS = sorted(p.stem for p in (ROOT / "archs").glob("*.cnn"))
# big networks: the float64 reference alone takes seconds per batch
SLOW = {"alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "nin", "resnet18", "resnet50", "mobilenet_v1"}
TOL = TOL32  # float32 against the float64 reference: tests/numerics.py derives the bound


def batch(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("net", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NETS])
def test_generated_module_matches_reference(net: str) -> None:
    g = load(ROOT / "archs" / f"{net}.cnn")
    mod = importlib.import_module(f"generated.{net}_cpu")
    params = cparams.random(g, seed=3)
    model = mod.Model(params)
    for n in (1, 3):
        x = batch(mod.INPUT_SHAPE, n, seed=n)
        y = model(x)
        assert y.shape == (n, *mod.OUTPUT_SHAPE) and y.dtype == np.float32
        err = rel_err(y, run(g, params, x))
        assert err <= TOL, f"{net} batch {n}: relative error {err:.2e}"


# --- every kernel and annotation on small graphs ---------------------------------------------

def zoo() -> object:
    """A small network using every op kind and the tricky cases of each kernel."""
    b = GraphBuilder("zoo", (6, 13, 11))
    x = b.input
    c1 = b.layer("conv", x, filters=8, kernel=3, pad=1)
    r1 = b.layer("relu", c1)
    bn = b.layer("batchnorm", r1)
    # r1 feeds two layers (batchnorm, maxpool)
    g2 = b.layer("conv", bn, filters=8, kernel=3, stride=2, pad=1, groups=2, bias=False)
    mp = b.layer("maxpool", r1, kernel=3, stride=2, pad=1, round="ceil")
    ap = b.layer("avgpool", bn, kernel=3, stride=2, pad=1, round="ceil", count_pad=False)
    ap2 = b.layer("avgpool", bn, kernel=2, stride=2, pad=1, round="ceil", count_pad=True)
    ap2 = b.layer("conv", ap2, filters=8, kernel=1)
    cat = b.layer("concat", [g2, mp, ap, ap2])
    ln = b.layer("lrn", cat, size=3, alpha=0.01, beta=0.6, k=1.5)
    ln2 = b.layer("lrn", ln, size=5, alpha=0.02, beta=0.75, k=2.0)
    c5 = b.layer("conv", ln2, filters=32, kernel=5, pad=2, round="ceil")
    r5 = b.layer("relu", c5)
    a = b.layer("conv", r5, filters=16, kernel=1)
    bb = b.layer("conv", r5, filters=16, kernel=1)
    cc = b.layer("conv", r5, filters=16, kernel=1)
    s = b.layer("add", [a, bb, cc])
    sm = b.layer("softmax", s)  # over channels at every pixel
    gp = b.layer("gap", sm)
    d = b.layer("dropout", gp, p=0.3)
    f = b.layer("flatten", d)
    f1 = b.layer("fc", f, out=24)
    f1 = b.layer("relu", f1)
    f2 = b.layer("fc", f1, out=7, bias=False)
    out = b.layer("softmax", f2)
    return b.finish(out)


def inception() -> object:
    """An inception-like block: sibling 1x1 convs (horizontal fusion), in-place concat."""
    b = GraphBuilder("incep", (16, 9, 9))
    x = b.layer("conv", b.input, filters=24, kernel=3, pad=1)
    x = b.layer("batchnorm", x)
    x = b.layer("relu", x)
    b1 = b.layer("relu", b.layer("conv", x, filters=8, kernel=1))
    b2 = b.layer("relu", b.layer("conv", x, filters=6, kernel=1))
    b2 = b.layer("relu", b.layer("conv", b2, filters=10, kernel=3, pad=1))
    b3 = b.layer("relu", b.layer("conv", x, filters=4, kernel=1))
    b3 = b.layer("relu", b.layer("conv", b3, filters=5, kernel=5, pad=2))
    b4 = b.layer("maxpool", x, kernel=3, stride=1, pad=1)
    b4 = b.layer("relu", b.layer("conv", b4, filters=7, kernel=1))
    cat = b.layer("concat", [b1, b2, b3, b4])
    y = b.layer("dropout", cat)
    y = b.layer("flatten", b.layer("avgpool", y, kernel=9, stride=1))
    return b.finish(b.layer("fc", y, out=10))


CASES = {
    "zoo-O0": lambda: zoo(),
    "zoo-O1": lambda: run_pipeline(zoo(), 1, log=None),
    "incep-O0": lambda: inception(),
    "incep-O1": lambda: run_pipeline(inception(), 1, log=None),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, object]]:
    out = {}
    d = tmp_path_factory.mktemp("gen")
    for name, make in CASES.items():
        g = make()
        g.graph["name"] = name.replace("-", "_")
        out[name] = (g, import_path(write(g, "cpu", d)))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_small_graphs_match_reference(case: str, compiled: dict) -> None:
    g, mod = compiled[case]
    src = zoo() if case.startswith("zoo") else inception()
    params = cparams.random(src, seed=7)
    assert list(mod.PARAM_SHAPES.items()) == param_specs(src)
    model = mod.Model(params)
    for n in (1, 3, 2):
        x = batch(mod.INPUT_SHAPE, n, seed=10 + n)
        err = rel_err(model(x), run(src, params, x))
        assert err <= TOL, f"{case} batch {n}: relative error {err:.2e}"


def test_o1_uses_annotations(compiled: dict) -> None:
    g, mod = compiled["incep-O1"]
    text = Path(mod.__file__).read_text()
    assert "(fused " in text  # horizontal fusion of the sibling 1x1 convs
    assert "concat in place (no copy)" in text
    assert re.search(r"^\s+copy\(", text, re.M) is None
    assert "relu(" not in text.split("class Model")[1]  # every ReLU fused into its conv
    g0, mod0 = compiled["incep-O0"]
    assert len(mod0.BUFFER_SIZES) >= len(mod.BUFFER_SIZES)


# --- the module's contract -----------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet() -> object:
    return importlib.import_module("generated.lenet5_cpu")


def test_header_constants_and_comments(lenet: object) -> None:
    text = Path(lenet.__file__).read_text()
    head = text.split('"""')[1]
    assert "archs/lenet5.cnn" in head and "cnnc 0." in head and "fuse_relu" in head
    assert "/work" not in text and "/home" not in text and "/tmp" not in text
    assert lenet.INPUT_SHAPE == (1, 32, 32) and lenet.OUTPUT_SHAPE == (10,)
    g = load(ROOT / "archs" / "lenet5.cnn")
    assert list(lenet.PARAM_SHAPES.items()) == param_specs(g)
    assert [row[0] for row in lenet.LAYERS][:2] == ["input", "c1"]
    imports = {ln.split()[1] for ln in text.splitlines() if ln.startswith(("import ", "from "))}
    # NumPy, Numba (llvmlite is Numba's code generator, which the register-blocked kernels build their vector code
    # with, and the threads' spin loops their atomics) and the standard library only
    assert imports <= {"numpy", "numba", "numba.core", "numba.extending", "llvmlite", "sys", "os", "zipfile", "queue",
                       "threading", "warnings", "collections", "itertools", "platform", "time"}
    # every kernel call in Model carries the .cnn line it came from
    body = text.split("class Model")[1]
    lines = body.splitlines()
    calls = [i for i, ln in enumerate(lines) if re.match(r"\s+(conv2d|linear|maxpool2d|relu)\(", ln)]
    assert calls
    for i in calls:
        assert re.match(r"\s+# lenet5\.cnn:\d+ \S+ ", lines[i - 1]), lines[i - 1]


def test_init_params_matches_cnnc(lenet: object) -> None:
    g = load(ROOT / "archs" / "lenet5.cnn")
    mine, theirs = lenet.init_params(5), cparams.init(g, 5)
    assert list(mine) == list(theirs)
    for k in mine:
        np.testing.assert_array_equal(mine[k], theirs[k])
    assert not np.array_equal(lenet.init_params(1)["c1.weight"], mine["c1.weight"])


def test_params_round_trip_and_errors(lenet: object, tmp_path: Path) -> None:
    p = lenet.init_params(2)
    path = tmp_path / "w.npz"
    lenet.save_params(path, p)
    back = lenet.load_params(path)
    assert list(back) == list(p) and all(np.array_equal(back[k], p[k]) for k in p)
    bad = dict(p)
    del bad["c1.bias"]
    bad["extra"] = np.zeros(3, np.float32)
    bad["c3.weight"] = np.zeros((1, 2), np.float32)
    bad["f6.weight"] = p["f6.weight"].astype(np.float64)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError) as e:
        lenet.load_params(tmp_path / "bad.npz")
    msg = str(e.value)
    for frag in ("missing c1.bias", "unexpected extra", "c3.weight has shape (1, 2)", "f6.weight has dtype float64"):
        assert frag in msg
    with pytest.raises(ValueError, match="missing c1.bias"):
        lenet.save_params(tmp_path / "x.npz", {k: v for k, v in p.items() if k != "c1.bias"})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read parameters"):
        lenet.load_params(tmp_path / "junk.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        lenet.load_params(tmp_path / "obj.npy")
    with pytest.raises(ValueError, match="shape"):
        lenet.Model({**p, "c1.weight": np.zeros((6, 1, 3, 3), np.float32)})


def test_input_validation(lenet: object) -> None:
    model = lenet.Model(lenet.init_params())
    good = batch(lenet.INPUT_SHAPE, 2, 0)
    cases = [
        (good.astype(np.float64), "dtype float64"),
        (good[:, :, :, :16], "shape"),
        (good[0], "shape"),
        (np.empty((0, 1, 32, 32), np.float32), "N >= 1"),
        (np.asfortranarray(good), "C-contiguous"),
        (good.tolist(), "NumPy array"),
    ]
    for x, frag in cases:
        with pytest.raises(ValueError, match=frag):
            model(x)


def test_batch_size_changes_and_forward(lenet: object) -> None:
    g = load(ROOT / "archs" / "lenet5.cnn")
    params = cparams.random(g, 1)
    model = lenet.Model(params)
    x3 = batch(lenet.INPUT_SHAPE, 3, 4)
    y3 = model(x3)
    y1 = model(x3[1:2].copy())
    y5 = model(np.concatenate([x3, x3[:2]]))
    ref = run(g, params, x3)  # each batch size sums in its own order: each is held to float64
    assert rel_err(y1[0], ref[1]) <= TOL and rel_err(y3, ref) <= TOL and rel_err(y5[:3], ref) <= TOL
    assert rel_err(y5[3:], ref[:2]) <= TOL
    np.testing.assert_array_equal(lenet.forward(x3, params), y3)  # the same weights and batch: same arithmetic
    # the output is a copy: the next call must not change it
    keep = y3.copy()
    model(x3 * 2)
    np.testing.assert_array_equal(y3, keep)


def test_generation_is_deterministic() -> None:
    g = run_pipeline(load(ROOT / "archs" / "googlenet.cnn"), 1, log=None)
    a = generate(g)
    b = generate(run_pipeline(load(ROOT / "archs" / "googlenet.cnn"), 1, log=None))
    assert a == b
    compile(a, "googlenet_cpu.py", "exec")


@pytest.mark.parametrize("case", ["zoo-O0", "incep-O1"])
def test_work_split_across_threads(case: str, compiled: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every split (images, row bands, channels, output features) gives an answer within the float64
    reference's bound (splits change the float32 summation order, so not bit-identical ones)."""
    _, mod = compiled[case]
    src = zoo() if case.startswith("zoo") else inception()
    params = cparams.random(src, seed=9)
    monkeypatch.setattr(mod, "_MIN_SPLIT", 0)  # split even these tiny layers
    before = mod.get_num_threads()
    try:
        for n in (1, 2, 5):
            x = batch(mod.INPUT_SHAPE, n, seed=20 + n)
            ref = run(src, params, x)
            outs = []
            for threads in (1, 2, 3):
                mod.set_num_threads(threads)
                outs.append(mod.Model(params)(x))
                assert rel_err(outs[-1], ref) <= TOL, f"{threads} threads, batch {n}"
    finally:
        mod.set_num_threads(before)


def test_compile_cost_table_names_every_threaded_kernel() -> None:
    """The parallel first call shares kernels out by ``_COMPILE_SECONDS``: every kernel a wrapper hands to
    ``_WORKERS.run`` has an entry there, and every entry names such a kernel (so the table cannot rot)."""
    templates = ROOT / "cnnc" / "codegen" / "templates"
    table = re.search(r"_COMPILE_SECONDS = \{(.*?)\}", (templates / "cpu_runtime.j2").read_text(), re.S)
    assert table is not None
    threaded = set()
    for t in templates.glob("cpu_kernel_*.j2"):
        for name in re.findall(r"_WORKERS\.run\((_[\w{} ]+?),", t.read_text()):
            threaded |= ({name.replace("{{ key }}", v.key) for v in winograd.VARIANTS} if "{{ key }}" in name
                         else {name})
    assert set(re.findall(r'"(_\w+)":', table.group(1))) == threaded


ONE_BRANCH_ADD = """network onebranch
input 4x8x8
a: add { conv(8, 3, pad=1) }
relu
b: add { conv(8, 1) relu }
gap
flatten
fc(3)
"""


@pytest.mark.parametrize("level", [0, 1])
def test_an_add_of_one_branch_is_that_branch(level: int, tmp_path: Path) -> None:
    """The language allows a merge of one branch; an ``add`` of one is its branch (the fuzzer found the CPU backend
    failing on it, and the CUDA one left its output unwritten): a copy, or a ReLU where one is fused into the add."""
    from cnnc.frontend import parse

    src = parse(ONE_BRANCH_ADD, "onebranch.cnn")
    g = run_pipeline(src, level, log=None) if level else src
    g.graph["name"] = f"onebranch{level}"
    mod = import_path(write(g, "cpu", tmp_path))
    text = (tmp_path / f"onebranch{level}_cpu.py").read_text()
    relu_fused = level == 1  # fuse_relu moves the relu after `a` into the add
    assert re.search(r"# onebranch\.cnn:3 a add( \+relu)?: .*\n\s+(relu|copy)\(", text)
    assert ("a add +relu" in text) == relu_fused
    params = cparams.random(src, seed=3)
    model = mod.Model(params)
    for n in (1, 2):
        x = batch(mod.INPUT_SHAPE, n, seed=n)
        err = rel_err(model(x), run(src, params, x))
        assert err <= TOL, f"O{level} batch {n}: relative error {err:.2e}"
    cuda = generate(g, "cuda")
    for name in ("a", "b"):  # one launch that writes the add's output (mode 1: the ReLU, 0: a copy)
        assert re.search(rf"L\.append\(\('{name}', channel_map, ", cuda), name
