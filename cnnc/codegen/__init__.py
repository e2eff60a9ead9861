"""Code generation: a graph in, a self-contained Python module out.

Layout (read this before adding a target):

* :mod:`cnnc.codegen.schedule` (backend-neutral): graph -> :class:`~cnnc.codegen.schedule.Plan`:
  the ordered steps with their input/output buffer references (channel slices are offsets),
  buffer sizes from liveness, the derivation of effective weights (``parts``), names and
  source locations. Every target uses it unchanged.
* :mod:`cnnc.codegen.render` (backend-neutral): the one Jinja environment (package
  templates, ``StrictUndefined``) and the atomic file writer.
* :mod:`cnnc.codegen.common` (backend-neutral): the context every module template shares
  (header, constants, parameter derivation), so targets present the same contract.
* a backend module per target (``cnnc/codegen/cpu.py`` + ``templates/cpu_*.j2``): decides
  which kernel runs each step and renders the module. It exports ``TARGET`` and
  ``generate(plan) -> str``. Adding a target is adding such a module, its templates and a
  line in :data:`BACKENDS`.

Public API: :func:`generate` (module source text), :func:`write` (into a directory, as
``<network>_<target>.py``), :func:`targets`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import networkx as nx

from ..errors import CnncError
from .render import write_atomic
from .schedule import mangle, schedule

#: target name -> backend module (imported lazily: a missing one is a user error, not a crash)
BACKENDS: dict[str, str] = {
    "cpu": "cnnc.codegen.cpu",
    "cuda": "cnnc.codegen.cuda",
}


def backend(target: str) -> ModuleType:
    """The backend module of ``target``, or a :class:`CnncError` naming the known targets."""
    name = BACKENDS.get(target)
    if name is None:
        raise CnncError(f"unknown target {target!r}; known targets: {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise CnncError(f"the {target} backend is not available in this version of cnnc") from None


def targets() -> list[str]:
    """The targets whose backends are installed."""
    out = []
    for t in BACKENDS:
        try:
            backend(t)
        except CnncError:
            continue
        out.append(t)
    return out


def module_name(g: nx.DiGraph, target: str) -> str:
    """``<network>_<target>``: the generated module's name (a Python identifier)."""
    return f"{mangle(str(g.graph.get('name') or 'network'))}_{target}"


def generate(g: nx.DiGraph, target: str = "cpu") -> str:
    """The source text of ``g``'s module for ``target`` (deterministic)."""
    return backend(target).generate(schedule(g))


def write(g: nx.DiGraph, target: str, outdir: str | Path) -> Path:
    """Generate ``g`` for ``target`` into ``outdir/<network>_<target>.py``; returns the path."""
    text = generate(g, target)
    return write_atomic(Path(outdir) / f"{module_name(g, target)}.py", text)


__all__ = ["BACKENDS", "backend", "generate", "module_name", "schedule", "targets", "write"]
