"""The ``cnnc`` command line: ``cnnc inspect|compile|run|bench FILE ...``.

Exit codes: 0 success, 2 a user error (a :class:`CnncError`: bad source, bad option,
bad file), 1 an internal error (a bug: please report it; ``--traceback`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import sys
import traceback

from . import __version__
from .commands import COMMANDS
from .errors import CnncError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cnnc",
        description="cnnc compiles convolutional networks written in .cnn files into "
        "NumPy-callable Numba (CPU) and numba.cuda (GPU) modules, and explains what they cost.",
        epilog="Run 'cnnc COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"cnnc {__version__}")
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of any error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = f"{name}_" if keyword.iskeyword(name) else name  # `cnnc import` lives in commands/import_.py
        try:
            mod = importlib.import_module(f".commands.{module}", __package__)
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.commands.{module}":
                raise
            continue  # a command not built yet
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CnncError as e:
        if args.traceback:
            traceback.print_exc()
        print(e.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:  # a legal but huge network (or batch) on this machine: not a bug in cnnc
        if args.traceback:
            traceback.print_exc()
        print("cnnc: error: out of memory; `cnnc inspect` shows the network's parameter and activation "
              "sizes (try a smaller --batch)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: no raw traceback by default
        if args.traceback:
            traceback.print_exc()
        print(
            f"cnnc: internal error: {type(e).__name__}: {e}\n"
            "This is a bug in cnnc; please report it with the command and input file "
            "(rerun with --traceback for details).",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
