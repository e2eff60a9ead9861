"""SVG and HTML from the Jinja templates in ``cnnc/draw/templates`` (autoescaping on).

Every string a picture shows passes through Jinja's escaping (``&``, ``<``, ``>``, quotes) and
:func:`_xml_chars` (characters XML 1.0 forbids, which a file name may hold, become U+FFFD), so
no name can inject markup or script. Numbers are printed with one decimal: same input, same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from .layout import LINE_H, MARKS, PAD_X, PAD_Y, Picture

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _xml_chars(value: Any) -> Any:
    """Replace characters that XML 1.0 cannot carry (an escaped string stays escaped)."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    return value


def _px(x: float) -> str:
    text = f"{float(x):.1f}"
    return text[:-2] if text.endswith(".0") else text


@cache
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.PackageLoader("cnnc.draw", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_xml_chars,
    )
    e.filters["px"] = _px
    e.globals.update(marks=MARKS, pad_x=PAD_X, pad_y=PAD_Y, line_h=LINE_H)
    return e


def svg(pic: Picture, standalone: bool = True) -> str:
    """The SVG document of ``pic`` (``standalone=False``: the ``<svg>`` element alone, for HTML)."""
    if standalone:
        return env().get_template("graph.svg.j2").render(pic=pic)
    return str(env().get_template("_picture.j2").module.svg(pic))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Cell:
    text: str
    value: str | int | float  # what the column sorts by
    num: bool = False


def num(n: int | float, text: str | None = None) -> Cell:
    return Cell(text if text is not None else (f"{n:,}" if isinstance(n, int) else f"{n:.3f}"), n, True)


def txt(s: str) -> Cell:
    return Cell(s, s)


@dataclass(frozen=True)
class Table:
    caption: str
    columns: list[tuple[str, bool]]  # (heading, numeric)
    rows: list[list[Cell]]
    foot: list[Cell] | None = None
    sortable: bool = True


def page(title: str, info: list[str], picture_svg: str, tables: list[Table], notes: list[str] | None = None,
         notes_title: str = "Pass report") -> str:
    """One self-contained HTML page: ``picture_svg`` (made by :func:`svg`, so already escaped)
    inline, the tables (sortable by a few lines of inline JavaScript), the notes."""
    return env().get_template("page.html.j2").render(
        title=title, info=info, svg=Markup(picture_svg), tables=tables, notes=notes or [], notes_title=notes_title)
