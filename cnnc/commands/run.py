"""``cnnc run FILE``: run a network and show its top classes.

The quickest way to see a network do something: parameters come from ``--params`` (an
``.npz``) or a seeded He-normal initialisation, the input from ``--input`` (an ``.npy``)
or a seeded random batch. ``--backend reference`` (the default) evaluates the graph with
the NumPy reference executor; ``--backend cpu`` (or ``cuda``) compiles the network like
``cnnc compile`` (``-O1`` by default) into ``--outdir`` and runs the generated module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import networkx as nx
import numpy as np

from .. import params as P
from ..errors import InputError
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
        "is standard normal noise (seeded).",
    )
    p.add_argument("file", help="a .cnn network")
    p.add_argument("--params", metavar="P.npz", help="parameters (.npz, float32, PyTorch layout; default: "
                   "cnnc.params.init with --seed)")
    p.add_argument("--input", metavar="X.npy", help="input batch (N,C,H,W) or one image (C,H,W) as .npy "
                   "(floating point; default: random with --seed)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random parameters and input (default: 0)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="images in the random input batch (default: 1)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="arithmetic precision (default: float32)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes to show per image (default: 5)")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="save the output array here instead of printing")
    p.add_argument("--backend", choices=("reference", "cpu", "cuda"), default="reference",
                   help="what computes the output: the NumPy reference executor (default) or the generated "
                   "Numba CPU / numba.cuda module")
    p.add_argument("--outdir", default="generated", metavar="DIR",
                   help="where --backend cpu|cuda writes the generated module (default: generated/)")
    add_pass_options(p, default_level=None)
    p.set_defaults(func=main)


def compiled_run(g: nx.DiGraph, backend: str, outdir: str, params: dict[str, np.ndarray],
                 x: np.ndarray) -> np.ndarray:
    """Generate ``g``'s module for ``backend`` into ``outdir``, import it and run it on ``x``."""
    from ..codegen import write
    from ..codegen.loader import import_path

    try:
        path = write(g, backend, outdir)
    except OSError as e:
        raise InputError(f"cannot write into {outdir}: {e.strerror or e}") from None
    print(f"compiled {path} (first call compiles its Numba kernels; later runs use the cache)", file=sys.stderr)
    module = import_path(path)
    return module.Model(params)(np.ascontiguousarray(x, dtype=np.float32))


def read_input(path: str, shape: tuple[int, ...], batch: int | None) -> np.ndarray:
    """The batch in ``path`` (an ``.npy``), checked against the network's input ``shape``."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise InputError(f"{path}: no such input file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected an .npy array") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if head.startswith(b"PK"):
        raise InputError(f"{path}: is an .npz archive, expected a single .npy array (numpy.save)")
    if head[:1] == b"\x80":
        raise InputError(f"{path}: is a Python pickle, not an .npy array; cnnc never unpickles")
    if not head.startswith(b"\x93NUMPY"):
        raise InputError(f"{path}: not an .npy array (no NumPy header); save the input with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
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
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise InputError(f"{path}: input has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf)")
    if batch is not None and batch != x.shape[0]:
        raise InputError(f"--batch {batch} contradicts {path}, which holds {x.shape[0]} image"
                         f"{'s' if x.shape[0] != 1 else ''}")
    return x


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
    if args.input:
        x = read_input(args.input, in_shape, args.batch)
        x_from = args.input
    else:
        x = random_input(in_shape, args.batch or 1, args.seed)
        x_from = f"random normal, seed {args.seed}"
    if args.backend == "reference":
        y = reference_run(g, params, x, np.dtype(args.dtype))
    else:
        y = compiled_run(g, args.backend, args.outdir, params, x)
    out = sys.stdout
    print(f"network {name}: input {fmt_shape(x.shape)} ({x_from}); parameters: {p_from}", file=out)
    print(f"output {fmt_shape(y.shape)} ({y.dtype})", file=out)
    if args.output:
        try:
            with open(args.output, "wb") as f:
                np.save(f, y)
        except OSError as e:
            raise InputError(f"cannot write {args.output}: {e.strerror or e}") from None
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
