"""``cnnc tune``: time every eligible conv strategy on each distinct conv shape of a network, record the fastest.

The cost model (:func:`cnnc.codegen.kernels.choose`) ranks strategies with constants fitted to one machine class;
a measurement on the machine at hand replaces it where it errs. :func:`measure` runs each strategy's own call
line (the generic kernels of :mod:`.harness`, the same code a module runs) on random data of every shape, at each
batch size, median of repeated calls, and picks the strategy with the least total time over the batch sizes.
The table is JSON (``--tuned FILE`` on ``compile``, ``inspect`` and ``bench`` reads it): one entry per
shape, so one table serves every network with that layer shape, and ``tune`` merges into an existing file.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, read_file
from . import STRATEGIES, ConvShape, choose, eligible

#: format marker and version of a tuning table
FORMAT = "cnnc-tune"
VERSION = 1


def key(sh: ConvShape) -> str:
    """A shape's key in the table: ``C,H,W->K,Ho,Wo k/s pad p groups G``."""
    return f"{sh.C}x{sh.H}x{sh.W}->{sh.K}x{sh.Ho}x{sh.Wo} k{sh.k}/s{sh.s} p{sh.p} g{sh.G}"


def measure(shapes: dict[ConvShape, str], batches: Iterable[int], threads: int, seconds: float,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time every eligible strategy on every shape (``{shape: where it occurs}``) at each batch size; the table
    (see the module docstring). Each pair runs at least 3 times and for at least ``seconds``."""
    from . import harness

    batches = list(batches)
    entries: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cnnc-tune-") as tmp:
        mod = harness.kernel_module(tmp)
        mod.set_num_threads(threads)
        rng = np.random.default_rng(0)
        for sh, where in shapes.items():
            ms: dict[str, list[float]] = {name: [] for name in eligible(sh)}
            for n in batches:
                x = rng.standard_normal((n, sh.C, sh.H, sh.W)).astype(np.float32)
                w = rng.standard_normal((sh.K, sh.C // sh.G, sh.k, sh.k)).astype(np.float32)
                b = rng.standard_normal(sh.K).astype(np.float32)
                for name in ms:
                    ns = harness.prepare(mod, name, sh, x, w, b, True)
                    harness.run(mod, name, sh, x, w, b, True, ns)  # warm: compiles on first use
                    ms[name].append(round(harness.median_seconds(mod, name, sh, x, w, b, True, ns, seconds) * 1e3, 4))
            best = min(ms, key=lambda s: (sum(ms[s]), list(ms).index(s)))
            entries[key(sh)] = {"choice": best, "model": choose(sh), "ms": ms, "where": where}
            if log is not None:
                log(f"{sh.text():<48} {where:<32} " + "  ".join(
                    f"{s}{'*' if s == best else ''} {'/'.join(f'{t:.3f}' for t in v)}" for s, v in ms.items()))
    return {"format": FORMAT, "version": VERSION, "machine": machine(), "threads": threads, "batches": batches,
            "shapes": entries}


def machine() -> str:
    """The CPU this table was measured on (model name and core count)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the shapes of ``old`` it did not measure kept."""
    return {**new, "shapes": {**old.get("shapes", {}), **new["shapes"]}}


def read(path: str | os.PathLike) -> dict[str, Any]:
    """A tuning table from ``path``, checked: an :class:`InputError` saying what is wrong otherwise."""
    p = Path(path)
    data = read_file(p, InputError, "a tuning table (JSON) written by `cnnc tune`", noun="tuning table",
                     hint=f" (write one with `cnnc tune NET.cnn -o {p}`)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: cannot read the tuning table: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{p}:{e.lineno}:{e.colno}: not a tuning table: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("shapes"), dict):
        raise InputError(f"{p}: not a tuning table: expected a JSON object with \"format\": \"{FORMAT}\" and "
                         "\"shapes\" (written by `cnnc tune`)")
    if doc.get("version") != VERSION:
        raise InputError(f"{p}: tuning table version {doc.get('version')!r}; this cnnc reads version {VERSION} "
                         "(run `cnnc tune` again)")
    for k, entry in doc["shapes"].items():
        choice = entry.get("choice") if isinstance(entry, dict) else None
        if choice not in STRATEGIES:
            raise InputError(f"{p}: shape {k!r}: unknown strategy {choice!r}; strategies: {', '.join(STRATEGIES)}")
    return doc


def write(doc: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``doc`` as sorted, indented JSON (the same table gives the same bytes)."""
    try:
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write the tuning table {path}: {e.strerror or e}") from None


def choices(doc: dict[str, Any], shapes: dict[str, ConvShape]) -> dict[str, str]:
    """``{layer: strategy}`` for the layers (``{layer: shape}``) whose shape the table holds; a choice that is not
    eligible for the shape (a hand-edited table) is an :class:`InputError`."""
    out: dict[str, str] = {}
    for layer, sh in shapes.items():
        entry = doc["shapes"].get(key(sh))
        if entry is None:
            continue
        why = STRATEGIES[entry["choice"]].eligible(sh)
        if why is not None:
            raise InputError(f"tuning table: shape {key(sh)!r} (layer {layer!r}) cannot use {entry['choice']}: {why}")
        out[layer] = entry["choice"]
    return out
