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
