"""Template rendering and file writing shared by every code-generation backend.

* :func:`environment` is the single Jinja environment: templates are loaded from the
  package (``cnnc/codegen/templates/*.j2``, shipped as package data), undefined names are
  errors (``StrictUndefined``), blocks trim their newlines, nothing is HTML-escaped.
  Templates hold no arithmetic: backends compute every size in Python and pass strings
  and numbers. The ``py`` filter renders a value as a Python literal (``repr``), so
  output is deterministic.
* :func:`render` renders one template to text ending in exactly one newline.
* :func:`write_atomic` writes a file through a temporary file in the same directory and
  ``os.replace``: readers never see a half-written module, and rewriting identical bytes
  leaves the file untouched (Numba's cache is keyed on the file, see DESIGN §5).
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2


def _py(value: Any) -> str:
    """A Python literal for ``value`` (tuples, lists, dicts, str, int, float, bool, None)."""
    return repr(value)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment of cnnc's code generation."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cnnc.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["py"] = _py
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a name under ``templates/``) with ``context``."""
    text = environment().get_template(template).render(**context)
    return text.rstrip("\n") + "\n"


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; skip the write when the bytes are already there."""
    p = Path(path)
    data = text.encode("utf-8")
    try:
        if p.read_bytes() == data:
            return p
    except OSError:
        pass
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p
