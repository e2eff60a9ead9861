"""The subcommands of ``cnnc``: one module each, exporting ``register(subparsers)``.

``register`` adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning the exit code. A command named by a Python keyword lives in a module
with a trailing underscore (``import`` in ``import_.py``). Errors a user can cause are raised as
:class:`~cnnc.errors.CnncError`; ``cnnc.cli`` prints them and exits 2.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError

COMMANDS = ("inspect", "explain", "check", "compile", "run", "bench", "tune", "export", "import")


def int_at_least(lo: int, what: str) -> Callable[[str], int]:
    """An argparse type accepting integers >= ``lo``; ``what`` names them in the error."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


#: ``--seed``: NumPy refuses negative seeds
seed = int_at_least(0, "a non-negative integer")
positive = int_at_least(1, "a positive integer")


def emit(text: str, output: str | None) -> None:
    """Write a command's text to the file ``output`` (a clear error if it cannot), or to standard output."""
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write {output}: {e.strerror}") from None
