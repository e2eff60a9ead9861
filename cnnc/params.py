"""Network parameters: initialisation, validation and ``.npz`` files.

Parameters are a ``dict[str, np.ndarray]`` of float32 arrays named ``<node>.weight``,
``<node>.bias`` (batchnorm also ``.running_mean`` and ``.running_var``) in PyTorch layout,
in the graph's declaration order: ``g.graph["params"]`` when a pass recorded the source
network's list, else :func:`cnnc.graph.param_specs`. One file serves every ``-O`` level.

Files are plain ``.npz`` archives read with ``allow_pickle=False``: cnnc never unpickles.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from math import prod, sqrt
from pathlib import Path

import networkx as nx
import numpy as np

from .errors import ParamsError, read_file
from .graph import param_specs

DTYPE = np.dtype(np.float32)
NPZ_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"


def specs(g: nx.DiGraph) -> list[tuple[str, tuple[int, ...]]]:
    """The network's parameters as ``[(name, shape), ...]`` in declaration order."""
    recorded = g.graph.get("params")
    if recorded:
        return [(str(n), tuple(int(d) for d in s)) for n, s in recorded]
    return param_specs(g)


def _is_bn_weight(name: str, shape: tuple[int, ...]) -> bool:
    # conv/fc weights have >= 2 dimensions; a 1-D ".weight" is a batchnorm's gamma
    return name.endswith(".weight") and len(shape) == 1


def _fan_in(shape: tuple[int, ...]) -> int:
    return prod(shape[1:])


def init(g: nx.DiGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Fresh float32 parameters: He-normal weights, zero biases, identity batchnorms.

    Exactly: ``rng = np.random.default_rng(seed)``; for each parameter in order, a conv/fc
    weight is ``rng.standard_normal(shape) * sqrt(2 / fan_in)`` (``fan_in = prod(shape[1:])``,
    drawn in float64, then cast); biases and running means are 0, batchnorm weights and
    running variances 1 (these draw nothing). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in specs(g):
        if _is_bn_weight(name, shape) or name.endswith(".running_var"):
            arr = np.ones(shape)
        elif name.endswith(".weight"):
            arr = rng.standard_normal(shape) * sqrt(2.0 / _fan_in(shape))
        else:  # .bias, .running_mean
            arr = np.zeros(shape)
        out[name] = arr.astype(DTYPE)
    return out


def random(g: nx.DiGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 parameters with nothing zero or one, for tests.

    He-normal weights; biases uniform in +-0.5 (never exactly 0); batchnorm weights and
    running variances uniform in [0.5, 1.5), running means normal with std 0.5.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in specs(g):
        if _is_bn_weight(name, shape) or name.endswith(".running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(".weight"):
            arr = rng.standard_normal(shape) * sqrt(2.0 / _fan_in(shape))
        elif name.endswith(".running_mean"):
            arr = rng.normal(0.0, 0.5, shape)
        else:
            arr = rng.uniform(-0.5, 0.5, shape)
            arr[arr == 0] = 0.25
        out[name] = arr.astype(DTYPE)
    return out


def problems(params: Mapping[str, object], g: nx.DiGraph) -> list[str]:
    """Every way ``params`` fails to fit ``g`` (empty when it fits)."""
    found: list[str] = []
    expected = specs(g)
    names = {n for n, _ in expected}
    for name, shape in expected:
        if name not in params:
            found.append(f"missing {name} (expected shape {shape}, float32)")
            continue
        a = params[name]
        if not isinstance(a, np.ndarray):
            found.append(f"{name} is a {type(a).__name__}, not a NumPy array")
            continue
        if a.shape != shape:
            found.append(f"{name} has shape {a.shape}, expected {shape}")
        if a.dtype != DTYPE:
            found.append(f"{name} has dtype {a.dtype}, expected float32")
        elif not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            found.append(f"{name} has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf)")
    for name in params:
        if name not in names:
            found.append(f"unexpected {name} (the network has no such parameter)")
    return found


def validate(params: Mapping[str, object], g: nx.DiGraph, where: str | None = None) -> dict[str, np.ndarray]:
    """``params`` in declaration order, or one :class:`ParamsError` listing every problem."""
    found = problems(params, g)
    if found:
        src = f" in {where}" if where else ""
        net = g.graph.get("name") or "the network"
        raise ParamsError(
            f"parameters{src} do not match {net!r} ({len(found)} problem{'s' if len(found) != 1 else ''}):\n"
            + "\n".join(f"  - {p}" for p in found)
        )
    return {name: params[name] for name, _ in specs(g)}  # type: ignore[misc]


def save(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> Path:
    """Write ``params`` to ``path`` as an uncompressed ``.npz`` exactly as given (no suffix is added)."""
    for name, a in params.items():
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise ParamsError(f"cannot save {name}: a numeric NumPy array is required")
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(f, **dict(params))
    return path


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, never unpickling; a :class:`ParamsError` otherwise."""
    path = Path(path)
    head = read_file(path, ParamsError, "a parameter file (.npz)", noun="parameter file", limit=8)
    if head.startswith(NPY_MAGIC):
        raise ParamsError(f"{path}: is a single .npy array, not an .npz archive of named parameters "
                          "(save with cnnc.params.save or numpy.savez)")
    if head[:1] == b"\x80":
        raise ParamsError(f"{path}: is a Python pickle (a torch.save file?), not an .npz archive; cnnc never "
                          "unpickles: convert it with cnnc.interop.torch.state_dict_to_params")
    if not (head.startswith(NPZ_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC)):
        raise ParamsError(f"{path}: is not an .npz archive (no zip signature)")
    try:
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ParamsError(f"{path}: is not a readable .npz archive ({e})") from None
    if any(m.endswith("data.pkl") for m in members):
        raise ParamsError(f"{path}: is a torch.save file (a zipped pickle), not an .npz archive; cnnc never "
                          "unpickles: convert it with cnnc.interop.torch.state_dict_to_params")
    foreign = [m for m in members if not m.endswith(".npy")]
    if foreign:
        raise ParamsError(f"{path}: is a zip archive but not an .npz: it holds non-array members "
                          f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''})")
    lying = _oversized_members(path)
    if lying:
        raise ParamsError(f"{path}: arrays declare more data than the archive holds (truncated or forged):\n"
                          + "\n".join(f"  - {m}" for m in lying))
    out: dict[str, np.ndarray] = {}
    bad: list[str] = []
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                try:
                    out[name] = npz[name]
                except MemoryError:
                    bad.append(f"{name} is too large to load into memory")
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        bad.append(f"{name} is an object array (pickled), which cnnc never loads")
                    else:
                        bad.append(f"{name} cannot be read: {e}")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise ParamsError(f"{path}: is not a readable .npz archive ({e})") from None
    if bad:
        raise ParamsError(f"{path}: unusable arrays ({len(bad)}):\n" + "\n".join(f"  - {b}" for b in bad))
    return out


def _oversized_members(path: Path) -> list[str]:
    """Members whose .npy header declares more bytes than the member holds: read from the headers
    alone, so a forged shape like (10**13,) is refused before NumPy allocates it."""
    out = []
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                with z.open(info) as f:
                    try:
                        version = np.lib.format.read_magic(f)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read_header(f)
                    except (ValueError, EOFError):
                        continue  # reported by np.load below with its own message
                    if dtype.hasobject:
                        continue  # refused below as pickled
                    declared = prod(shape) * dtype.itemsize
                    if declared > info.file_size:
                        out.append(f"{info.filename[:-4]} declares shape {shape} ({declared} bytes) "
                                   f"in a member of {info.file_size} bytes")
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return []  # np.load below reports an unreadable archive
    return out


def load(path: str | os.PathLike, g: nx.DiGraph) -> dict[str, np.ndarray]:
    """The parameters in ``path`` (an ``.npz``), validated against ``g`` (see :func:`validate`)."""
    return validate(read(path), g, where=str(path))

