"""The subcommands of ``cnnc``: one module each, exporting ``register(subparsers)``.

``register`` adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning the exit code. Errors a user can cause are raised as
:class:`~cnnc.errors.CnncError`; ``cnnc.cli`` prints them and exits 2.
"""

COMMANDS = ("inspect", "compile", "run", "bench")
