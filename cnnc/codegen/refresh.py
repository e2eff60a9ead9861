"""Regenerate ``generated/``: the module of every network in ``archs/``, compiled at ``-O1``.

    python -m cnnc.codegen.refresh            # rewrite what changed
    python -m cnnc.codegen.refresh --check    # exit 1 and list the stale files

Sources are recorded as ``archs/<file>.cnn`` (relative to the repository root) whatever the
working directory, so the output is the same bytes on every machine. Unchanged files are
not rewritten (Numba's cache beside them stays valid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..frontend import parse
from . import generate, module_name
from .render import write_atomic

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ROOT / "archs"
GENERATED = ROOT / "generated"
TARGETS: tuple[str, ...] = ("cpu", "cuda")
LEVEL = 1
REFRESH_COMMAND = "python -m cnnc.codegen.refresh"


def networks(archs: Path = ARCHS) -> list[Path]:
    """The ``.cnn`` files of ``archs/``, sorted."""
    return sorted(archs.glob("*.cnn"))


def expected(targets: tuple[str, ...] = TARGETS, archs: Path = ARCHS) -> dict[str, str]:
    """``{file name: source text}`` of every module ``generated/`` should hold."""
    from ..passes.manager import run_pipeline

    out: dict[str, str] = {}
    for path in networks(archs):
        g = parse(path.read_text(encoding="utf-8"), source=f"{archs.name}/{path.name}", name=path.stem)
        g = run_pipeline(g, LEVEL, log=None)
        for t in targets:
            out[f"{module_name(g, t)}.py"] = generate(g, t)
    return out


def stale(outdir: Path = GENERATED, targets: tuple[str, ...] = TARGETS) -> list[str]:
    """Names of the modules in ``outdir`` that are missing or differ from :func:`expected`."""
    bad = []
    for name, text in expected(targets).items():
        p = outdir / name
        if not p.exists() or p.read_bytes() != text.encode("utf-8"):
            bad.append(name)
    return bad


def refresh(outdir: Path = GENERATED, targets: tuple[str, ...] = TARGETS) -> list[Path]:
    """Write every expected module into ``outdir``; returns the paths."""
    return [write_atomic(outdir / name, text) for name, text in expected(targets).items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cnnc.codegen.refresh", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale modules (exit 1 if any)")
    ap.add_argument("--target", action="append", choices=["cpu", "cuda"],
                    help="targets to generate (repeatable; default: cpu and cuda)")
    args = ap.parse_args(argv)
    targets = tuple(args.target) if args.target else TARGETS
    if args.check:
        bad = stale(GENERATED, targets)
        for name in bad:
            print(f"stale: generated/{name}")
        return 1 if bad else 0
    for p in refresh(GENERATED, targets):
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
