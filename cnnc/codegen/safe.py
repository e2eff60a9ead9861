"""Text from a ``.cnn`` file (names, the source path) made safe to place in generated Python.

Nothing a user writes may become code in a generated module. Values go through ``repr``
(the templates' ``py`` filter); everything else that reaches a module does so through
these helpers:

* :func:`comment_text` for text inside ``#`` comments and docstrings: backslashes, quotes
  and every non-printable or line-breaking character (newlines, ``\\r``, U+2028, NEL, the
  bidirectional overrides of "Trojan Source") are written as Python escapes, so the text
  stays on its line, cannot close a docstring and cannot form a bad ``\\N{...}`` escape.
* :func:`py_ident` for text that must be an identifier (letters, digits, ``_``; never a
  keyword, never starting with a digit).
* :func:`check_name` refuses a graph node name that would need escaping (the front end only
  makes names of letters, digits, ``_`` and ``/``; a hand-built graph might not).
"""

from __future__ import annotations

import keyword
import re

from ..errors import CnncError

_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def comment_text(text: str) -> str:
    """``text`` as it may appear inside a comment or a docstring: one line, no quotes, no raw backslash."""
    out = []
    for ch in str(text):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() and ch != "\x7f":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def py_ident(name: str) -> str:
    """A Python identifier for ``name``: ``i3a/b2/conv1`` -> ``i3a_b2_conv1`` (ASCII only)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


def check_name(name: str, what: str = "layer") -> str:
    """``name`` unchanged if it can appear verbatim in a comment; otherwise a :class:`CnncError`."""
    if comment_text(name) != name or not name:
        raise CnncError(f"{what} name {name!r} cannot be written into generated code; "
                        "use letters, digits, '_' and '/'")
    return name
