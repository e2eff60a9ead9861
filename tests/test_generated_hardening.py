"""Generated modules refuse bad weights and bad inputs with a clear ValueError (issue 7, items 4-5)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numerics import TOL32, rel_err

import generated.lenet5_cpu as net
from cnnc.frontend import load
from cnnc.runtime.reference import run


def test_nan_and_inf_weights_are_refused(tmp_path: Path) -> None:
    params = net.init_params(1)
    params["c3.weight"][0, 0, 0, 0] = np.nan
    params["f6.bias"][3] = np.inf
    with pytest.raises(ValueError) as info:
        net.Model(params)
    assert "c3.weight contains NaN or infinite values" in str(info.value)
    assert "f6.bias contains NaN or infinite values" in str(info.value)
    path = tmp_path / "bad.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError, match="2 problems"):
        net.load_params(path)


def test_forged_header_is_refused_before_allocating(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**13,)})
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("c1.weight.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(ValueError, match=r"corrupt parameter file: c1\.weight\.npy declares shape \(10000000000000,\)"):
        net.load_params(path)


def test_input_checks_and_the_finite_flag() -> None:
    model = net.Model(net.init_params(0))
    x = np.random.default_rng(0).standard_normal((2, *net.INPUT_SHAPE)).astype(np.float32)
    x[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="input contains NaN or infinite values"):
        model(x)
    y = net.Model(net.init_params(0), check_finite=False)(x)
    assert np.isfinite(y[0]).all()
    with pytest.raises(ValueError, match="expected float32"):
        model(x.astype(np.float64))
    with pytest.raises(ValueError, match="not C-contiguous"):
        model(np.asfortranarray(x[:, :, :, :]).transpose(0, 1, 3, 2))
    with pytest.raises(ValueError, match="expects"):
        model(x[:, :, :16])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_nonfinite_image_anywhere_in_the_batch_is_refused(threads: int) -> None:
    # LeNet's first run of steps shares the batch out by images; each thread checks its own images of the input
    assert "_by_images(self._steps_0_" in Path(net.__file__).read_text()
    model = net.Model(net.init_params(0))
    clean = np.random.default_rng(0).standard_normal((5, *net.INPUT_SHAPE)).astype(np.float32)
    before = net.get_num_threads()
    net.set_num_threads(threads)
    try:
        for n in (1, 2, 5):
            for image in range(n):
                for bad in (np.nan, np.inf, -np.inf):
                    x = clean[:n].copy()
                    x[image, 0, image % 32, (7 * image) % 32] = bad
                    with pytest.raises(ValueError, match="input contains NaN or infinite values"):
                        model(x)
            y = model(clean[:n])  # the same Model goes on as before
            assert rel_err(y, model(clean[:n].copy())) == 0.0 and np.isfinite(y).all()
    finally:
        net.set_num_threads(before)


def test_a_module_whose_input_no_run_takes_checks_it_in_the_call() -> None:
    source = (Path(__file__).resolve().parents[1] / "generated" / "conv5x5_cpu.py").read_text()
    assert "_by_images(self." not in source  # one conv: no run of steps
    assert "check_input(x, self.check_finite)" in source


def test_the_finite_check_reads_the_bits() -> None:
    f32 = np.finfo(np.float32)
    ok = np.array([0.0, -0.0, f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, 1.0, -3.5], np.float32)
    assert net._finite(np.tile(ok, (3, 5)))
    for bad in (np.nan, np.inf, -np.inf, np.float32("-nan")):
        for at in (0, 17, 39):
            x = np.tile(ok, (1, 5))
            x[0, at] = bad
            assert not net._finite(x)


def test_new_batch_size_reallocates() -> None:
    """Batch sizes 1, 5, 2 on one Model. Batching changes the GEMM blocking and so the float32
    summation order: each answer is held to the float64 reference (tests/numerics.py says why
    TOL32), never to another float32 answer with a tolerance tuned to one machine's BLAS."""
    params = net.init_params(0)
    model = net.Model(params)
    x = np.random.default_rng(1).standard_normal((5, *net.INPUT_SHAPE)).astype(np.float32)
    ref = run(load(Path(__file__).resolve().parents[1] / "archs" / "lenet5.cnn"), params, x)
    one_by_one = np.concatenate([model(x[i:i + 1]) for i in range(5)])
    together = model(x)
    again = model(x[:2])
    assert rel_err(one_by_one, ref) <= TOL32
    assert rel_err(together, ref) <= TOL32
    assert rel_err(again, ref[:2]) <= TOL32
