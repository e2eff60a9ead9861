"""Errors cnnc reports to its users.

Every error a user can cause is a :class:`CnncError`. Errors that come from a
``.cnn`` source carry a :class:`Span` and render as ``file:line:col: message``
followed by the offending source line and a caret, the way compilers do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A location in a source file (1-based line and column)."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class CnncError(Exception):
    """Base of every error cnnc reports to a user (exit code 2 in the CLI)."""

    def __init__(self, message: str, span: Span | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.notes: list[str] = []  # extra context lines ("in block ... called at ...")

    def render(self) -> str:
        """``file:line:col: message``, then the source line and a caret under the column."""
        notes = "".join(f"\n  note: {n}" for n in self.notes)
        if self.span is None:
            return f"error: {self.message}{notes}"
        head = f"{self.span}: error: {self.message}"
        line = _source_line(self.source, self.span.line)
        if line is None:
            return head + notes
        caret = " " * (self.span.column - 1) + "^"
        if self.span.end_line == self.span.line and self.span.end_column:
            width = max(1, self.span.end_column - self.span.column)
            caret = " " * (self.span.column - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {line}\n    {caret}{notes}"

    def __str__(self) -> str:
        return self.render()


def _source_line(source: str | None, line: int) -> str | None:
    if source is None:
        return None
    lines = source.split("\n")  # as the lexer counts lines: not splitlines(), which also splits at \f, U+2028...
    if 1 <= line <= len(lines):
        return "".join(" " if c == "\t" else c if c.isprintable() else "?" for c in lines[line - 1].rstrip("\r"))
    return None


class SyntaxErrorCnn(CnncError):
    """The source does not follow the grammar."""


class NameErrorCnn(CnncError):
    """An unknown layer kind, block, attribute or reference, or a duplicate name."""


class ArgumentError(CnncError):
    """A layer or block was given the wrong arguments (count, name, type or value)."""


class ShapeError(CnncError):
    """Shapes do not fit: a kernel larger than its input, a stride that does not divide, a merge mismatch."""


class LimitError(CnncError):
    """A network exceeds a documented resource limit (see :mod:`cnnc.limits`)."""


class ParamsError(CnncError):
    """A parameter file does not match the network."""


class GraphError(CnncError):
    """The graph verifier found an inconsistency (after a pass, usually a bug in the pass)."""


class InputError(CnncError):
    """A command-line input (a file, an option) is unusable."""


def read_file(path: str | os.PathLike, error: type[CnncError], expected: str, noun: str = "file",
              limit: int = -1, hint: str = "") -> bytes:
    """The first ``limit`` bytes of the file at ``path`` (all of it when ``limit`` is -1). When the file
    is missing, a directory or unreadable, an ``error`` that names the path and what was expected:
    ``PATH: no such NOUN[HINT]``, ``PATH: is a directory, expected EXPECTED``, ``PATH: cannot read (why)``."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise error(f"{path}: no such {noun}{hint}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected {expected}") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
