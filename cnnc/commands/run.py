"""``cnnc run FILE``: run a network and show its top classes.

The quickest way to see a network do something: parameters come from ``--params`` (an
``.npz``) or a seeded He-normal initialisation, the input from ``--input`` (an ``.npy``)
or a seeded random batch. ``--backend reference`` (the default) evaluates the graph with
the NumPy reference executor; ``--backend cpu`` (or ``cuda``) compiles the network like
``cnnc compile`` (``-O1`` by default) into ``--outdir`` and runs the generated module.

Many images: ``cnnc run FILE --input images.npy --batch 32 -o out.npy`` streams the input
(memory-mapped, so it may be larger than memory) through the network 32 images at a time,
with a progress bar when stderr is a terminal, writes the output through a temporary file in
the same directory that replaces ``out.npy`` only once every image is done (an error or
Ctrl-C leaves no partial file), and prints the throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import networkx as nx
import numpy as np

from .. import params as P
from ..errors import InputError, read_file
from ..frontend import load
from ..passes.cli import add_pass_options, apply_pass_options
from ..runtime.reference import run as reference_run
from ..shapes import fmt_shape
from . import seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a network (NumPy reference or the compiled module) and print its top-5 classes",
        description="Evaluate FILE on an input batch and print the output shape and, per image, the top "
        "classes and their scores; or save the whole output with -o. --backend reference (default) uses "
        "cnnc's NumPy reference executor (the numerical ground truth); --backend cpu|cuda compiles FILE "
        "into --outdir (like cnnc compile, -O1 unless -O says otherwise) and runs the generated module. "
        "Without --params the weights are He-normal with zero biases (seeded); without --input the batch "
        "is standard normal noise (seeded). Many images: --input images.npy --batch 32 -o out.npy streams "
        "the memory-mapped input 32 images at a time into out.npy (written atomically: an error or Ctrl-C "
        "leaves no partial file), with a progress bar on a terminal and the throughput at the end.",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--params", metavar="P.npz", help="parameters (.npz, float32, PyTorch layout; default: "
                   "cnnc.params.init with --seed)")
    p.add_argument("--input", metavar="X.npy", help="input batch (N,C,H,W) or one image (C,H,W) as .npy "
                   "(floating point; default: random with --seed)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random parameters and input (default: 0)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="images per call: with --input, the input is streamed N images at a time "
                   "(default: all at once); without, the size of the random batch (default: 1)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="arithmetic precision (default: float32)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes to show per image (default: 5)")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="save the output array here instead of printing "
                   "(written atomically: the file appears only once every image is done)")
    p.add_argument("--backend", choices=("reference", "cpu", "cuda"), default="reference",
                   help="what computes the output: the NumPy reference executor (default) or the generated "
                   "Numba CPU / numba.cuda module")
    p.add_argument("--outdir", default="generated", metavar="DIR",
                   help="where --backend cpu|cuda writes the generated module (default: generated/)")
    add_pass_options(p, default_level=None)
    p.set_defaults(func=main)


def runner(g: nx.DiGraph, backend: str, outdir: str, params: dict[str, np.ndarray],
           dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """A function from an input batch to the output: the reference executor, or ``g``'s module for
    ``backend`` generated into ``outdir``, imported, with its weights derived once."""
    if backend == "reference":
        return lambda x: reference_run(g, params, x, dtype)
    from ..codegen import write
    from ..codegen.loader import import_path

    try:
        path = write(g, backend, outdir)
    except OSError as e:
        raise InputError(f"cannot write into {outdir}: {e.strerror or e}") from None
    print(f"compiled {path} (first call compiles its Numba kernels; later runs use the cache)", file=sys.stderr)
    model = import_path(path).Model(params)
    return lambda x: model(np.ascontiguousarray(x, dtype=np.float32))


def read_input(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """The batch in ``path`` (an ``.npy``) memory-mapped, checked against the network's input
    ``shape``; one image ``shape`` comes back as a batch of one. Values are checked as they are
    read (:func:`checked`)."""
    head = read_file(path, InputError, "an .npy array", noun="input file", limit=6)
    if head.startswith(b"PK"):
        raise InputError(f"{path}: is an .npz archive, expected a single .npy array (numpy.save)")
    if head[:1] == b"\x80":
        raise InputError(f"{path}: is a Python pickle, not an .npy array; cnnc never unpickles")
    if not head.startswith(b"\x93NUMPY"):
        raise InputError(f"{path}: not an .npy array (no NumPy header); save the input with numpy.save")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "object" in str(e).lower():
            raise InputError(f"{path}: holds an object array (pickled data); cnnc never unpickles") from None
        raise InputError(f"{path}: not an .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read an .npy array ({e})") from None
    want = fmt_shape(shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or x.shape[0] == 0:
        raise InputError(f"{path}: input has shape {fmt_shape(x.shape) or '()'}, the network takes "
                         f"{want} images: expected shape Nx{want} (a batch) or {want} (one image)")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{path}: input has dtype {x.dtype}, expected floating point (float32)")
    return x


def checked(path: str, x: np.ndarray, lo: int, total: int) -> np.ndarray:
    """``x`` (images ``lo`` on of an input of ``total``) read into memory, or an InputError if it
    holds NaN or infinities."""
    x = np.array(x, order="C")  # a writable copy of this part of the file
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        where = f" in images {lo}-{lo + len(x) - 1}" if len(x) < total else ""
        raise InputError(f"{path}: input has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf){where}")
    return x


@contextmanager
def atomic_npy(path: str) -> Iterator[Callable[[tuple[int, ...], np.dtype], np.ndarray]]:
    """Yields ``open(shape, dtype)``, which makes a memory-mapped ``.npy`` in a temporary file
    beside ``path``; on leaving without an error the file replaces ``path`` (exactly that name),
    on an error or Ctrl-C it is removed: readers never see a partial output."""
    target = Path(path)
    made: list[tuple[str, np.memmap]] = []

    def open_(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror or e}") from None
        os.close(fd)
        made.append((tmp, np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)))
        return made[-1][1]

    try:
        yield open_
        for tmp, out in made:
            out.flush()
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the output from other users
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        for tmp, _ in made:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def stream(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int, path: str,
           out: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None) -> tuple[np.ndarray, float]:
    """``fn`` over ``x`` (memory-mapped) ``batch`` images at a time, with a progress bar on a
    terminal; the output goes into the array ``out(shape, dtype)`` makes (else into memory).
    Returns the output and the seconds spent."""
    from tqdm import tqdm

    n = x.shape[0]
    y: np.ndarray | None = None
    start = time.perf_counter()
    with tqdm(total=n, unit="img", disable=n <= batch or not sys.stderr.isatty(), file=sys.stderr,
              leave=True) as bar:
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            part = fn(checked(path, x[lo:hi], lo, n))
            if y is None:
                shape = (n,) + part.shape[1:]
                y = out(shape, part.dtype) if out is not None else np.empty(shape, part.dtype)
            y[lo:hi] = part
            bar.update(hi - lo)
    assert y is not None
    return y, time.perf_counter() - start


def random_input(shape: tuple[int, ...], batch: int, seed: int) -> np.ndarray:
    """A standard normal batch, deterministic for ``seed`` (independent of the parameter stream)."""
    return np.random.default_rng([seed, 1]).standard_normal((batch,) + shape).astype(np.float32)


def top_lines(y: np.ndarray, k: int) -> list[str]:
    """Per image, the ``k`` highest-scoring classes of a flat output ``(N, classes)``."""
    lines = []
    k = min(k, y.shape[1])
    for i, row in enumerate(y):
        order = np.argsort(-row, kind="stable")[:k]
        lines.append(f"image {i}: top-{k}")
        lines.extend(f"  {rank}. class {c:<6d} {row[c]: .6g}" for rank, c in enumerate(order, 1))
    return lines


def main(args: argparse.Namespace) -> int:
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    g = load(args.file)
    if args.opt_level is None:  # the reference runs the source graph, a compiled module -O1 (as cnnc compile)
        args.opt_level = 0 if args.backend == "reference" else 1
    g = apply_pass_options(g, args)
    if args.backend != "reference" and args.dtype != "float32":
        raise InputError(f"--backend {args.backend} computes in float32; --dtype float64 needs --backend reference")
    name = g.graph.get("name") or Path(args.file).stem
    in_shape = tuple(g.nodes[g.graph["input"]]["shape"])
    if args.params:
        params = P.load(args.params, g)
        p_from = args.params
    else:
        params = P.init(g, args.seed)
        p_from = f"He-normal init, seed {args.seed}"
    out = sys.stdout
    if args.input:
        x = read_input(args.input, in_shape)
        x_from = args.input
    else:
        x = random_input(in_shape, args.batch or 1, args.seed)
        x_from = f"random normal, seed {args.seed}"
    n = x.shape[0]
    batch = min(args.batch or n, n) if args.input else n
    fn = runner(g, args.backend, args.outdir, params, np.dtype(args.dtype))
    print(f"network {name}: input {fmt_shape(x.shape)} ({x_from}); parameters: {p_from}", file=out)
    with atomic_npy(args.output) if args.output else nullcontext() as open_npy:
        y, seconds = stream(fn, x, batch, args.input or "input", open_npy)
        print(f"output {fmt_shape(y.shape)} ({y.dtype})", file=out)
    if args.input:
        print(f"{n:,} image{'s' if n != 1 else ''} in {seconds:.2f} s: {n / seconds:,.1f} images/s "
              f"(batch {batch}, {args.backend} backend)", file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}", file=out)
        return 0
    flat = y.reshape(y.shape[0], -1)
    if y.ndim == 2 or all(d == 1 for d in y.shape[2:]):
        for line in top_lines(flat, args.top):
            print(line, file=out)
    else:
        print("a feature map, not class scores: per image min / mean / max (save it with -o)", file=out)
        for i, row in enumerate(flat):
            print(f"image {i}: {row.min(): .6g} / {row.mean(): .6g} / {row.max(): .6g}", file=out)
    return 0
