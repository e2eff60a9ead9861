"""Import a generated module from its file, under the name a plain ``import`` would give it.

Numba's on-disk cache (``cache=True``) records the module's name and imports it by that
name when a later process loads the cached code. So a file must always be imported under
one name: a module inside a package directory (``generated/__init__.py`` exists) is
imported as ``generated.<stem>``, exactly as ``import generated.googlenet_cpu`` does; a
loose file as ``<stem>``. (Generated modules also register their bare stem as an alias, so
either kind of entry loads.) The module is in ``sys.modules`` before it runs, without which
a second process crashes loading the cache (DESIGN §5).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..errors import InputError


def _exec(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    kwargs = {"submodule_search_locations": [str(package_dir)]} if package_dir is not None else {}
    spec = importlib.util.spec_from_file_location(name, path, **kwargs)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot import (not a Python file?)")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _same_file(mod: ModuleType | None, path: Path) -> bool:
    f = getattr(mod, "__file__", None)
    return bool(f) and Path(f).resolve() == path


def module_name_for(path: str | Path) -> str:
    """``generated.googlenet_cpu`` for ``generated/googlenet_cpu.py`` (a package), else the stem."""
    p = Path(path).resolve()
    parent = p.parent
    if (parent / "__init__.py").exists() and parent.name.isidentifier():
        return f"{parent.name}.{p.stem}"
    return p.stem


def import_path(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the Python file ``path`` (see the module docstring for the name it gets).

    An explicit ``name`` imports it under that (top-level) name instead: then every process
    sharing its Numba cache must use the same name."""
    p = Path(path).resolve()
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    if name is not None:
        mod = sys.modules.get(name)
        return mod if _same_file(mod, p) else _exec(name, p)  # type: ignore[return-value]
    name = module_name_for(p)
    mod = sys.modules.get(name)
    if _same_file(mod, p):
        return mod  # type: ignore[return-value]
    if "." in name:
        pkg = name.split(".")[0]
        init = p.parent / "__init__.py"
        if not _same_file(sys.modules.get(pkg), init.resolve()):
            for key in [k for k in sys.modules if k == pkg or k.startswith(pkg + ".")]:
                del sys.modules[key]  # another directory's package of the same name
            _exec(pkg, init, p.parent)
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    return _exec(name, p)
