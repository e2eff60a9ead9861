"""A mutation fuzzer for the front end: bad input must give a :class:`CnncError`, never a crash or a hang.

Each case takes one of the shipped networks (``archs/*.cnn``), applies one to three random
mutations (delete, duplicate or swap tokens and lines; numbers replaced by 0, -1, huge values
or floats; identifiers replaced by keywords, layer kinds or non-ASCII text; truncation; random
characters; deep nesting; huge repeats; lines spliced from another network; valid layers and
small merges inserted, so that many mutants still build) and runs the
pipeline a user reaches with ``cnnc inspect``: parsing, shape and cost analysis, every report
format (table, JSON, DOT), the claims (``cnnc check``) and derivations (``cnnc explain``),
optionally the passes (``--passes``: ``-O1``, and ``-O1`` with the bottleneck pass, both under the
graph verifier, whose :class:`GraphError` counts as a bug) and code generation
(``--compile``: :func:`cnnc.codegen.generate` for cpu and cuda, whose text must be valid Python;
the module is never imported, run or compiled by Numba).

A case passes when it succeeds or raises a :class:`CnncError`; any other exception, or running
past the per-case time limit (SIGALRM), is a failure whose input and traceback are saved to
the reproducer directory. ``python -m cnnc.fuzz --cases 10000 --seed 1`` prints a summary.

The mutations are deterministic functions of a :class:`random.Random`, so a case is
reproduced by its seed, and hypothesis (``tests/test_fuzz.py``) can drive and shrink them.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CnncError, GraphError

ARCHS = Path(__file__).resolve().parent.parent / "archs"

#: tokens of the .cnn language, roughly: comments, names, numbers, shapes, punctuation, space
_TOKEN = re.compile(r"#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:x[0-9]+)+|[0-9.]+(?:[eE][-+]?[0-9]+)?|\n|[ \t]+|.")
_NUMBER = re.compile(r"(?<![A-Za-z_0-9.])[0-9]+(?:\.[0-9]*)?(?![0-9A-Za-z_])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

NUMBERS = ["0", "-1", "1", "2", "3", "-0", "0.5", "1e999", "1e-9", "2.0", "65535", "1048577", "1000000000",
           "99999999999999999999", "9" * 5000, "(1/0)", "(0-2)", "3*0", "7/2", "1e308*10", ".5", "1.e3"]
IDENTS = ["network", "input", "output", "block", "expect", "repeat", "concat", "add", "identity", "same", "ceil",
          "floor", "strict", "true", "false", "conv", "maxpool", "avgpool", "gap", "lrn", "relu", "fc",
          "linear", "flatten", "dropout", "softmax", "batchnorm", "bn", "globalavgpool", "None", "import",
          "__import__", "x" * 300, "çonv", "ℕ", "名前", "\u202econv", "conv\u200b", "_", "input_1"]
NOISE = list("(){}[]@:;,=+-*/#\\\"'`$!?<>|&^%~.\t\r\f\v\x00") + ["\u00a0", "\u2028", "\ufeff", "é", "🙂", "\n"]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _pick_span(rng: random.Random, n: int) -> tuple[int, int]:
    i = rng.randrange(n)
    return i, min(n, i + rng.choice((1, 1, 1, 2, 3)))


# -- mutations: (random, text) -> text -------------------------------------------------------

def delete_token(rng: random.Random, text: str) -> str:
    t = _tokens(text)
    if not t:
        return text
    i, j = _pick_span(rng, len(t))
    return "".join(t[:i] + t[j:])


def duplicate_token(rng: random.Random, text: str) -> str:
    t = _tokens(text)
    if not t:
        return text
    i, j = _pick_span(rng, len(t))
    return "".join(t[:j] + t[i:j] * rng.choice((1, 2, 5)) + t[j:])


def swap_tokens(rng: random.Random, text: str) -> str:
    t = _tokens(text)
    if len(t) < 2:
        return text
    i, j = rng.randrange(len(t)), rng.randrange(len(t))
    t[i], t[j] = t[j], t[i]
    return "".join(t)


def delete_line(rng: random.Random, text: str) -> str:
    ls = _lines(text)
    i, j = _pick_span(rng, len(ls))
    return "\n".join(ls[:i] + ls[j:])


def duplicate_line(rng: random.Random, text: str) -> str:
    ls = _lines(text)
    i, j = _pick_span(rng, len(ls))
    return "\n".join(ls[:j] + ls[i:j] * rng.choice((1, 2, 3)) + ls[j:])


def swap_lines(rng: random.Random, text: str) -> str:
    ls = _lines(text)
    i, j = rng.randrange(len(ls)), rng.randrange(len(ls))
    ls[i], ls[j] = ls[j], ls[i]
    return "\n".join(ls)


def replace_number(rng: random.Random, text: str) -> str:
    spots = list(_NUMBER.finditer(text))
    if not spots:
        return text
    m = rng.choice(spots)
    return text[: m.start()] + rng.choice(NUMBERS) + text[m.end():]


def replace_name(rng: random.Random, text: str) -> str:
    spots = [m for m in _NAME.finditer(text) if not _in_comment(text, m.start())]
    if not spots:
        return text
    m = rng.choice(spots)
    return text[: m.start()] + rng.choice(IDENTS) + text[m.end():]


def _in_comment(text: str, pos: int) -> bool:
    start = text.rfind("\n", 0, pos) + 1
    return "#" in text[start:pos]


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def insert_noise(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    noise = "".join(rng.choice(NOISE) for _ in range(rng.choice((1, 1, 2, 4))))
    return text[:i] + noise + text[i:]


def deep_nesting(rng: random.Random, text: str) -> str:
    """Wrap a chain line in many groups, or a number in many parentheses or unary minuses."""
    depth = rng.choice((10, 63, 65, 200, 1000, 5000, 20000))
    ls = _lines(text)
    if rng.random() < 0.5:
        cands = [i for i, ln in enumerate(ls) if ln.strip() and not ln.lstrip().startswith(
            ("#", "network", "input", "block", "output", "expect", "}"))]
        if cands:
            i = rng.choice(cands)
            ls[i] = "{ " * depth + ls[i] + " }" * depth
            return "\n".join(ls)
    spots = list(_NUMBER.finditer(text))
    if not spots:
        return text
    m = rng.choice(spots)
    wrapped = rng.choice(("(" * depth + m.group() + ")" * depth, "-" * (2 * depth) + m.group(),
                          "+".join([m.group()] + ["0"] * depth)))
    return text[: m.start()] + wrapped + text[m.end():]


def huge_repeat(rng: random.Random, text: str) -> str:
    """Wrap a chain line in ``repeat N { ... }`` with N up to far beyond the limits."""
    ls = _lines(text)
    cands = [i for i, ln in enumerate(ls) if ln.strip() and not ln.lstrip().startswith(
        ("#", "network", "input", "block", "output", "expect", "}"))]
    if not cands:
        return text
    i = rng.choice(cands)
    n = rng.choice(("2", "100", "10001", "1000000", "10**9", "0", "-3", "2.5", "1e9"))
    ls[i] = f"repeat {n} {{ {ls[i]} }}"
    return "\n".join(ls)


def splice(rng: random.Random, text: str) -> str:
    """Insert a few lines of another shipped network."""
    other = _lines(rng.choice(list(corpus().values())))
    i, j = _pick_span(rng, len(other))
    ls = _lines(text)
    k = rng.randrange(len(ls) + 1)
    return "\n".join(ls[:k] + other[i:j] + ls[k:])


LAYERS = ["relu", "maxpool(2)", "maxpool(3, stride=1, pad=1)", "avgpool(3, stride=2, round=ceil)", "conv(3, 1)",
          "conv(8, 3, pad=same)", "conv(4, 3, groups=2)", "batchnorm", "bn(eps=0.001)", "dropout(0.3)", "lrn",
          "lrn(3, alpha=0.001)", "gap", "flatten", "softmax", "fc(10)", "linear(7, bias=false)", "identity",
          "add { relu\n identity }", "concat { conv(2, 1)\n maxpool(3, stride=1, pad=1) }",
          "concat { conv(2, 1) relu; conv(3, 1) relu }", "repeat 2 { conv(4, 3, pad=1) relu }", "@input"]


def insert_layer(rng: random.Random, text: str) -> str:
    """Insert a valid layer (or a small merge) before a token of a chain line: often still a network."""
    ls = _lines(text)
    cands = [i for i, ln in enumerate(ls) if ln.strip() and not ln.lstrip().startswith(
        ("#", "network", "input", "block", "output", "expect", "}"))]
    if not cands:
        return text
    i = rng.choice(cands)
    spots = [m.start() for m in re.finditer(r"(?<![\w.(,=])[A-Za-z_@{]", ls[i])] or [len(ls[i])]
    k = rng.choice(spots + [len(ls[i])])
    ls[i] = ls[i][:k] + rng.choice(LAYERS) + " " + ls[i][k:]
    return "\n".join(ls)


MUTATIONS: dict[str, Callable[[random.Random, str], str]] = {
    f.__name__: f for f in (delete_token, duplicate_token, swap_tokens, delete_line, duplicate_line, swap_lines,
                            replace_number, replace_name, truncate, insert_noise, deep_nesting, huge_repeat, splice,
                            insert_layer)
}


_CORPUS: dict[str, str] = {}


def corpus(directory: Path = ARCHS) -> dict[str, str]:
    """The seed networks: file name -> text (``archs/*.cnn``)."""
    if not _CORPUS:
        for p in sorted(directory.glob("*.cnn")):
            _CORPUS[p.name] = p.read_text(encoding="utf-8")
        if not _CORPUS:
            raise CnncError(f"no .cnn files in {directory}")
    return _CORPUS


def mutate(text: str, steps: list[tuple[str, int]]) -> str:
    """Apply the named mutations in order, each with its own seed (deterministic)."""
    for name, seed in steps:
        text = MUTATIONS[name](random.Random(seed), text)
    return text


# -- running one case -----------------------------------------------------------------------

class CaseTimeout(Exception):
    """A case ran past its time limit (raised from the SIGALRM handler)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (SIGALRM; no-op elsewhere)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):  # noqa: ANN001, ARG001 - signal handler signature
        raise CaseTimeout(f"ran past the time limit of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(text: str, source: str = "<fuzz>", passes: bool = False, codegen: bool = False) -> None:
    """What ``cnnc inspect`` (and optionally the passes and ``cnnc compile``) do with ``text``.

    Returns normally or raises :class:`CnncError` for good behaviour; anything else is a bug.
    """
    from .frontend import parse
    from .report import to_dot, to_json, to_table

    g = parse(text, source=source)
    for fmt in (to_table, to_json, to_dot):
        out = fmt(g)
        if not isinstance(out, str) or not out:
            raise AssertionError(f"{fmt.__name__} returned {out!r}")
    # `cnnc check` and `cnnc explain`: the claims (mutated `expect` lines included) and every derivation
    from .explain.claims import check as check_claims
    from .explain.claims import render
    from .explain.derive import derive

    render(check_claims(g))
    for d in derive(g):
        d.text()
        d.as_dict()
    if passes or codegen:
        from .passes.manager import run_pipeline

        opt = run_pipeline(g, level=1, verify=True, log=None)  # the verifier checks the graph after every pass
        to_json(opt)
        to_json(run_pipeline(g, level=1, passes=["bottleneck"], verify=True, log=None))
        if codegen:
            from .codegen import generate

            for target in ("cpu", "cuda"):
                text = generate(opt, target)
                compile(text, f"<{target} module>", "exec")  # a syntax check only: never run


@dataclass
class Outcome:
    """What one case did: ``ok``, ``error`` (a CnncError) or ``failure`` (a bug or a hang)."""

    kind: str
    error: str = ""  # exception class name
    trace: str = ""
    seconds: float = 0.0


def run_case(text: str, timeout: float = 10.0, passes: bool = False, codegen: bool = False) -> Outcome:
    """Run :func:`check` under a time limit and classify the result."""
    t0 = time.perf_counter()
    try:
        with time_limit(timeout):
            check(text, passes=passes, codegen=codegen)
    except GraphError as e:  # the verifier caught a pass breaking the graph: a bug, not a user error
        return Outcome("failure", type(e).__name__, traceback.format_exc(), time.perf_counter() - t0)
    except CnncError as e:
        try:  # what the CLI prints must render too: file:line:col, the line and a caret
            shown = e.render()
            if not shown or (e.span is not None and f":{e.span.line}:{e.span.column}:" not in shown):
                raise AssertionError(f"bad rendering: {shown!r}")
            if not all(ln.isprintable() for ln in shown.split("\n")):  # no raw \r, \x1b... reach a terminal
                raise AssertionError(f"unprintable characters in the message: {shown!r}")
        except Exception as r:  # noqa: BLE001
            return Outcome("failure", f"render:{type(r).__name__}", traceback.format_exc(), time.perf_counter() - t0)
        return Outcome("error", type(e).__name__, seconds=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        return Outcome("failure", type(e).__name__, traceback.format_exc(), time.perf_counter() - t0)
    return Outcome("ok", seconds=time.perf_counter() - t0)


def random_steps(rng: random.Random) -> list[tuple[str, int]]:
    """One to three mutations with their seeds."""
    return [(rng.choice(list(MUTATIONS)), rng.randrange(1 << 32)) for _ in range(rng.choice((1, 1, 2, 3)))]


@dataclass
class Summary:
    cases: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (case, class, saved path)
    slowest: tuple[float, int] = (0.0, -1)
    seconds: float = 0.0

    def text(self) -> str:
        lines = [f"cases: {self.cases} in {self.seconds:.1f} s (slowest case #{self.slowest[1]}: "
                 f"{self.slowest[0]:.2f} s)",
                 f"succeeded: {self.ok}",
                 f"CnncError: {sum(self.errors.values())}"]
        lines += [f"  {k}: {v}" for k, v in sorted(self.errors.items(), key=lambda kv: -kv[1])]
        lines.append(f"failures (not a CnncError, or a hang): {len(self.failures)}")
        lines += [f"  case {i}: {cls} -> {path}" for i, cls, path in self.failures]
        return "\n".join(lines)


def fuzz(cases: int, seed: int = 0, timeout: float = 10.0, passes: bool = False, codegen: bool = False,
         save: Path | None = None, progress: Callable[[str], object] | None = None) -> Summary:
    """Run ``cases`` random cases from ``seed``; failures are saved under ``save`` (when given)."""
    rng = random.Random(seed)
    seeds = corpus()
    names = sorted(seeds)
    s = Summary()
    t0 = time.perf_counter()
    for i in range(cases):
        arch = rng.choice(names)
        steps = random_steps(rng)
        text = mutate(seeds[arch], steps)
        out = run_case(text, timeout, passes, codegen)
        s.cases += 1
        if out.seconds > s.slowest[0]:
            s.slowest = (out.seconds, i)
        if out.kind == "ok":
            s.ok += 1
        elif out.kind == "error":
            s.errors[out.error] += 1
        else:
            path = ""
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                p = save / f"case{i}_{out.error}.cnn"
                p.write_text(text, encoding="utf-8", errors="surrogatepass")
                p.with_suffix(".txt").write_text(f"from {arch} by {steps}\n\n{out.trace}", encoding="utf-8")
                path = str(p)
            s.failures.append((i, out.error, path))
        if progress is not None and (i + 1) % 1000 == 0:
            progress(f"{i + 1} cases, {len(s.failures)} failures, {time.perf_counter() - t0:.0f} s")
    s.seconds = time.perf_counter() - t0
    return s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnc.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    p.add_argument("--passes", action="store_true", help="also run the -O1 passes on graphs that build")
    p.add_argument("--compile", action="store_true",
                   help="also generate the cpu and cuda modules (-O1; syntax-checked, never run)")
    p.add_argument("--save", type=Path, default=Path("fuzz-failures"), help="directory for reproducers")
    a = p.parse_args(argv)
    s = fuzz(a.cases, a.seed, a.timeout, a.passes, a.compile, a.save,
             progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(s.text())
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
