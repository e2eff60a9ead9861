"""The pass manager: the registry of passes, ``-O`` levels and ``NAME[:key=value,...]`` specs.

Each pass is a module ``cnnc/passes/<name>.py`` with

* ``run(g, **options) -> new graph`` (never mutating ``g``),
* ``PRESERVES_VALUES`` (True: ``-O1`` runs it; False: architecture-changing, opt-in only),
* ``OPTIONS``: ``{name: (type, default, help)}``,
* a docstring saying what it requires, ensures and whether it preserves values.

``-O0`` runs nothing, ``-O1`` every value-preserving pass in :data:`ORDER`. Passes asked for by
name run too: architecture-changing ones first (in the order given: they change the parameter
list, see ``bottleneck``), then the value-preserving ones (the level's plus those named, each
once, options from the spec) in :data:`ORDER`, which is the order they depend on each other.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from types import ModuleType

import networkx as nx

from ..errors import CnncError
from ..graph import param_specs
from . import dump as dumps
from .rewrite import clone
from .verify import verify as verify_graph

#: every pass, in the order a pipeline runs them
ORDER = ("bottleneck", "dropout", "dce", "bn_fold", "fuse_relu", "concat_elim", "hfuse", "fuse_add", "memplan")
LEVELS = (0, 1)

Spec = tuple[str, dict[str, object]]


def get(name: str) -> ModuleType:
    """The module of pass ``name`` (a :class:`CnncError` listing the known passes otherwise)."""
    if name not in ORDER:
        raise CnncError(f"unknown pass {name!r}; known passes: {', '.join(ORDER)}")
    return importlib.import_module(f"{__package__}.{name}")


def summary(name: str) -> str:
    """The first line of a pass's docstring."""
    return (get(name).__doc__ or name).strip().splitlines()[0]


def level_passes(level: int) -> list[str]:
    """The passes ``-O<level>`` runs."""
    if level not in LEVELS:
        raise CnncError(f"unknown optimisation level -O{level}; use -O0 or -O1")
    return [] if level == 0 else [p for p in ORDER if get(p).PRESERVES_VALUES]


def _convert(pass_name: str, key: str, typ: type, text: str) -> object:
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        value = typ(text)
    except ValueError:
        raise CnncError(f"pass {pass_name!r}: option {key}={text!r} is not a valid {typ.__name__}") from None
    return value


def parse_spec(spec: str | Spec) -> Spec:
    """``"bottleneck:ratio=0.5,min_saving=3"`` -> ``("bottleneck", {"ratio": 0.5, "min_saving": 3.0})``."""
    if isinstance(spec, tuple):
        name, opts = spec
        check_options(name, opts)
        return name, dict(opts)
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    mod = get(name)
    options: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq:
            raise CnncError(f"pass {name!r}: option {item!r} must be written key=value")
        if key not in mod.OPTIONS:
            known = ", ".join(mod.OPTIONS) or "none"
            raise CnncError(f"pass {name!r} has no option {key!r}; its options: {known}")
        options[key] = _convert(name, key, mod.OPTIONS[key][0], text)
    return name, options


def check_options(name: str, options: dict[str, object]) -> None:
    mod = get(name)
    for key in options:
        if key not in mod.OPTIONS:
            known = ", ".join(mod.OPTIONS) or "none"
            raise CnncError(f"pass {name!r} has no option {key!r}; its options: {known}")


def plan(level: int = 1, passes: Iterable[str | Spec] = ()) -> list[Spec]:
    """The ``(name, options)`` list a pipeline runs, in order."""
    specs = [parse_spec(s) for s in passes]
    first = [(n, o) for n, o in specs if not get(n).PRESERVES_VALUES]
    chosen: dict[str, dict[str, object]] = {p: {} for p in level_passes(level)}
    for n, o in specs:
        if get(n).PRESERVES_VALUES:
            chosen.setdefault(n, {}).update(o)
    return first + [(p, chosen[p]) for p in ORDER if p in chosen]


def run_pass(g: nx.DiGraph, name: str, options: dict[str, object] | None = None) -> nx.DiGraph:
    """Run one pass on ``g`` and record its name; ``g`` is left unchanged."""
    options = dict(options or {})
    check_options(name, options)
    if "params" not in g.graph:
        g = clone(g)
        g.graph["params"] = param_specs(g)
    new = get(name).run(g, **options)
    if new is g:
        raise CnncError(f"internal error: pass {name!r} returned its input graph")
    new.graph["passes"] = list(g.graph.get("passes", [])) + [name]
    return new


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def run_pipeline(g: nx.DiGraph, level: int = 1, passes: Iterable[str | Spec] = (), verify: bool = False,
                 dump_after: str | None = None, dump: Callable[[str], object] = print,
                 dump_format: str = "text", log: Callable[[str], object] | None = _stderr) -> nx.DiGraph:
    """Run ``-O<level>`` plus the passes named in ``passes`` on ``g`` and return the new graph.

    Before any pass the source parameter list is recorded in ``g.graph["params"]`` (on a copy).
    ``verify`` checks the graph before and after every pass (:class:`GraphError` names the pass).
    ``dump_after`` (a pass name, or ``all``) hands the graph after that pass, as ``dump_format``
    text, to ``dump``. ``log`` receives the passes' reports (bottleneck, memory plan).
    """
    steps = plan(level, passes)
    names = [n for n, _ in steps]
    if dump_format not in dumps.FORMATS:
        raise CnncError(f"unknown dump format {dump_format!r}; use one of {', '.join(dumps.FORMATS)}")
    if dump_after not in (None, "all") and dump_after not in names:
        get(dump_after)  # an unknown name is reported with the list of passes
        raise CnncError(f"--dump-after {dump_after}: that pass does not run in this pipeline "
                        f"({', '.join(names) or 'no passes'})")
    g = clone(g)
    if "params" not in g.graph:
        g.graph["params"] = param_specs(g)
    if verify:
        verify_graph(g)
    for name, options in steps:
        g = run_pass(g, name, options)
        if verify:
            verify_graph(g, after=name)
        if log is not None:
            for line in report_lines(g, name):
                log(line)
        if dump_after in ("all", name):
            dump(dumps.dump(g, dump_format, f"{g.graph.get('name')} after pass {name}"))
    return g


def report_lines(g: nx.DiGraph, name: str) -> list[str]:
    """What a pass has to say about the graph it produced (for the log)."""
    if name == "bottleneck":
        from .bottleneck import format_report

        return format_report(g.graph["reports"]["bottleneck"]).splitlines()
    if name == "memplan":
        from .memplan import describe

        text = describe(g)
        return [text] if text else []
    if name == "hfuse":
        fusions = g.graph.get("reports", {}).get("hfuse", {}).get("fusions", [])
        return [f"hfuse: {len(fusions)} horizontal fusion(s)"] if fusions else []
    return []
