"""Import a generated module from its file.

The module is registered in ``sys.modules`` *before* it runs: Numba's on-disk cache
(``cache=True``) looks the module up there, and without it a second process crashes
loading the cache (DESIGN §5). Importing the same path twice returns the same module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ..errors import InputError


def import_path(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the Python file ``path`` as module ``name`` (default: its stem)."""
    p = Path(path).resolve()
    name = name or p.stem
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == p:
        return mod
    spec = importlib.util.spec_from_file_location(name, p)
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
