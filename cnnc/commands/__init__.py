"""The subcommands of ``cnnc``: one module each, exporting ``register(subparsers)``.

``register`` adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning the exit code. Errors a user can cause are raised as
:class:`~cnnc.errors.CnncError`; ``cnnc.cli`` prints them and exits 2.
"""

COMMANDS = ("inspect", "compile", "run", "bench")


def seed(text: str) -> int:
    """An argparse type for ``--seed``: a non-negative integer (NumPy refuses negative seeds)."""
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v
