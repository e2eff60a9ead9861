"""``cnnc bench --per-layer --report FILE``: a bar chart of the time per layer, beside its share
of the MACs and its GFLOP/s against the machine's GEMM rate, as SVG or a self-contained HTML page.

The GEMM rate is measured here (:func:`gemm_rate`) with the BLAS a generated CPU module calls
(``np.dot`` inside ``@njit``: SciPy's OpenBLAS at one thread per call) on as many threads as the
module uses, so a layer at 100% runs as fast as that machine multiplies matrices; a layer far
below it (a memory-bound pool, a badly shaped GEMM) shows itself by its short, red efficiency bar.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ..errors import CnncError, InputError
from .layout import CHAR_W, MARGIN, Text
from .render import Table, env, num, page, txt

#: how a report file is written, by its suffix
SUFFIXES = (".html", ".htm", ".svg")


@dataclass(frozen=True)
class LayerTime:
    """The median time of one layer's kernel calls at one batch size."""

    layer: str
    what: str
    where: str
    ms: float
    macs: int  # per image

    def gflops(self, batch: int) -> float | None:
        return 2.0 * self.macs * batch / (self.ms * 1e-3) / 1e9 if self.macs and self.ms > 0 else None


def per_layer(steps: Sequence[tuple[str, str, str, float]], g: nx.DiGraph) -> list[LayerTime]:
    """Kernel calls ``(layer, what, where, ms)`` summed per layer, in order of first call."""
    out: dict[str, list[Any]] = {}
    for layer, what, where, ms in steps:
        if layer in out:
            out[layer][3] += ms
            if what not in out[layer][1].split("; "):
                out[layer][1] += f"; {what}"
        else:
            out[layer] = [layer, what, where, ms]
    return [LayerTime(a, b, c, float(ms), int(g.nodes[a]["cost"].macs) if a in g else 0)
            for a, b, c, ms in out.values()]


@cache
def _gemm_kernel() -> Any:
    import numba

    @numba.njit(nogil=True, cache=False)
    def gemms(a: np.ndarray, b: np.ndarray, reps: int) -> float:  # pragma: no cover - compiled
        s = 0.0
        for _ in range(reps):
            s += np.dot(a, b)[0, 0]
        return s

    return gemms


def gemm_rate(threads: int, n: int = 384, reps: int = 10, trials: int = 5) -> float:
    """GFLOP/s of ``n x n x n`` float32 GEMMs, one stream per thread, ``threads`` at once (best of ``trials``)."""
    f = _gemm_kernel()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    f(a, b, 1)  # compile and warm up
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(trials):
            t0 = time.perf_counter()
            list(pool.map(lambda _i: f(a, b, reps), range(threads)))
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 * reps * threads / best / 1e9


# ---------------------------------------------------------------------------------------------
# geometry of the chart


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    fill: str
    tooltip: str


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    title: str
    texts: tuple[Text, ...]
    bars: tuple[Bar, ...]
    rules: tuple[tuple[float, float, float, float], ...]  # x1, y1, x2, y2
    rows: tuple[str, ...]  # the layer of each row, top to bottom


ROW_H = 18.0
TIME_W = 300.0
MACS_W = 140.0
RATE_W = 200.0
#: efficiency (share of the GEMM rate) -> colour of the GFLOP/s bar
EFFICIENCY = ((0.0, "#d73027"), (0.1, "#fc8d59"), (0.3, "#91cf60"), (0.6, "#1a9850"))


def _eff_colour(e: float) -> str:
    colour = EFFICIENCY[0][1]
    for lo, c in EFFICIENCY:
        if e >= lo:
            colour = c
    return colour


def _r(x: float) -> float:
    return round(x, 1)


def chart(rows: list[LayerTime], batch: int, rate: float, info: list[str], title: str) -> Chart:
    """Three bar columns per layer: time (share of the total), share of the MACs, GFLOP/s as a share
    of ``rate`` (the machine's GEMM GFLOP/s, drawn as the full width)."""
    total_ms = sum(r.ms for r in rows) or 1.0
    total_macs = sum(r.macs for r in rows) or 1
    max_ms = max((r.ms for r in rows), default=1.0) or 1.0
    max_macs = max((r.macs for r in rows), default=1) or 1
    label_w = max([len(f"{r.layer}  {r.what}") for r in rows] + [10]) * CHAR_W
    x_time = MARGIN + label_w + 12
    x_macs = x_time + TIME_W + 120
    x_rate = x_macs + MACS_W + 70
    width = x_rate + RATE_W + 150
    texts = [Text(MARGIN, MARGIN + 12, title, "title")]
    y = MARGIN + 20
    for line in info:
        y += 16
        texts.append(Text(MARGIN, _r(y), line, "info"))
    y += 26
    texts += [Text(MARGIN, _r(y), "layer  what runs", "head"),
              Text(_r(x_time), _r(y), f"time, batch {batch} (median; bar: share of the largest)", "head"),
              Text(_r(x_macs), _r(y), "share of MACs", "head"),
              Text(_r(x_rate), _r(y), f"GFLOP/s (full width: GEMM {rate:.1f})", "head")]
    y += 8
    bars: list[Bar] = []
    rules = []
    top = y
    for r in rows:
        cy = y + ROW_H / 2
        texts.append(Text(MARGIN, _r(cy + 4), f"{r.layer}  {r.what}", "row"))
        w = TIME_W * r.ms / max_ms
        bars.append(Bar(_r(x_time), _r(y + 3), _r(w), ROW_H - 6, "#4575b4",
                        f"{r.layer}: {r.ms:.3f} ms ({100 * r.ms / total_ms:.1f}% of {total_ms:.3f} ms), {r.where}"))
        texts.append(Text(_r(x_time + w + 4), _r(cy + 4), f"{r.ms:.3f} ms {100 * r.ms / total_ms:.1f}%", "num"))
        if r.macs:
            share = r.macs / total_macs
            w = MACS_W * r.macs / max_macs
            bars.append(Bar(_r(x_macs), _r(y + 3), _r(w), ROW_H - 6, "#984ea3",
                            f"{r.layer}: {r.macs:,} MACs per image ({100 * share:.1f}%)"))
            texts.append(Text(_r(x_macs + w + 4), _r(cy + 4), f"{100 * share:.1f}%", "num"))
        gf = r.gflops(batch)
        if gf is not None:
            e = gf / rate if rate > 0 else 0.0
            w = RATE_W * min(e, 1.25)
            bars.append(Bar(_r(x_rate), _r(y + 3), _r(w), ROW_H - 6, _eff_colour(e),
                            f"{r.layer}: {gf:.1f} GFLOP/s, {100 * e:.0f}% of the GEMM rate"))
            texts.append(Text(_r(x_rate + w + 4), _r(cy + 4), f"{gf:.1f} ({100 * e:.0f}%)", "num"))
        else:
            texts.append(Text(_r(x_rate), _r(cy + 4), "no MACs", "num"))
        y += ROW_H
    rules.append((_r(x_rate + RATE_W), _r(top), _r(x_rate + RATE_W), _r(y)))
    rules.append((_r(x_time), _r(top), _r(x_time), _r(y)))
    texts.append(Text(MARGIN, _r(y + 18), f"total {total_ms:.3f} ms per batch of {batch}; the line at the right "
                      "of the GFLOP/s column is the GEMM rate", "info"))
    return Chart(_r(width), _r(y + 18 + MARGIN), title, tuple(texts), tuple(bars), tuple(rules),
                 tuple(r.layer for r in rows))


def _table(rows: list[LayerTime], batch: int, rate: float) -> Table:
    total_ms = sum(r.ms for r in rows) or 1.0
    total_macs = sum(r.macs for r in rows) or 1
    body = []
    for i, r in enumerate(rows):
        gf = r.gflops(batch)
        body.append([num(i + 1), txt(r.layer), txt(r.what), txt(r.where), num(r.ms, f"{r.ms:.3f}"),
                     num(r.ms / total_ms, f"{100 * r.ms / total_ms:.1f}%"), num(r.macs),
                     num(r.macs / total_macs, f"{100 * r.macs / total_macs:.1f}%"),
                     num(gf or 0.0, f"{gf:.1f}" if gf is not None else ""),
                     num((gf or 0.0) / rate if rate else 0.0, f"{100 * gf / rate:.0f}%" if gf and rate else "")])
    columns = [("#", True), ("layer", False), ("what runs", False), ("source", False), ("ms", True),
               ("% time", True), ("MACs per image", True), ("% MACs", True), ("GFLOP/s", True),
               ("% of GEMM rate", True)]
    return Table(f"Time per layer, batch {batch} (click a heading to sort)", columns, body)


def write(path: str, g: nx.DiGraph, rows: list[LayerTime], batch: int, threads: int, rate: float,
          target: str = "cpu") -> None:
    """Write the report (SVG or HTML by the suffix of ``path``)."""
    check_path(path)
    passes = ", ".join(g.graph.get("passes") or []) or "none"
    title = f"{g.graph['name']}: time per layer"
    info = [f"source {g.graph['source']}; target {target}; passes: {passes}",
            f"batch {batch}, {threads} thread{'s' if threads != 1 else ''}; machine GEMM rate {rate:.1f} GFLOP/s "
            f"(float32 {threads} x single-threaded BLAS)"]
    c = chart(rows, batch, rate, info, title)
    if Path(path).suffix.lower() == ".svg":
        text = env().get_template("chart.svg.j2").render(chart=c)
    else:
        svg_el = str(env().get_template("_chart.j2").module.chart(c))  # type: ignore[attr-defined]
        text = page(title, info, svg_el, [_table(rows, batch, rate)])
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None


def check_path(path: str) -> None:
    if Path(path).suffix.lower() not in SUFFIXES:
        raise CnncError(f"--report {path}: the file name must end in .html or .svg")
