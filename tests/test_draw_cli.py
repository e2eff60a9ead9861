"""`cnnc inspect --format svg|html` and `cnnc bench --report`: the pages parse, hold the numbers of
`--format json`, are self-contained and escape hostile file names; option errors exit 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.draw.bench_report import TIME_W, LayerTime, chart

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ROOT / "archs"
SVG = "{http://www.w3.org/2000/svg}"


class Page(HTMLParser):
    """The tables (cells' text and data-v), every tag and attribute, and the script text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[dict[str, list[list[tuple[str, str]]]]] = []
        self.scripts: list[str] = []
        self._section = ""
        self._row: list[tuple[str, str]] | None = None
        self._cell: list[str] | None = None
        self._value = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self.tables.append({"thead": [], "tbody": [], "tfoot": []})
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._value = [], a.get("data-v") or ""
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(("".join(self._cell).strip(), self._value))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1][self._section].append(self._row)
            self._row = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_script:
            self.scripts.append(data)


def parse_page(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    return p


def self_contained(p: Page) -> None:
    """No file or network fetched: no src/href, no link/iframe/object/img, one inline script."""
    for tag, attrs in p.tags:
        assert tag not in ("link", "iframe", "object", "embed", "img", "base"), tag
        assert not {"src", "href", "xlink:href", "action"} & set(attrs), (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert [t for t, _ in p.tags].count("script") == 1
    assert "http" not in "".join(p.scripts) and "fetch" not in "".join(p.scripts)


def inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("path", "opts", "draw"), [("googlenet.cnn", ["-O1"], []),
                                                   ("inception_naive.cnn", ["--pass", "bottleneck"], ["--diff"]),
                                                   ("vgg16.cnn", [], ["--color", "params"])])
def test_html_holds_the_json_numbers(capsys: pytest.CaptureFixture[str], path: str, opts: list[str],
                                     draw: list[str]) -> None:
    code, text, _ = inspect(capsys, str(ARCHS / path), *opts, "--format", "json")
    assert code == 0
    doc = json.loads(text)
    code, text, _ = inspect(capsys, str(ARCHS / path), *opts, *draw, "--format", "html")
    assert code == 0
    page = parse_page(text)
    self_contained(page)
    totals, layers = page.tables
    head = [c for c, _ in layers["thead"][0]]
    keys = {"weights": "weights", "biases": "biases", "params": "params", "macs": "MACs", "other_ops": "other ops",
            "activations": "activations"}
    col = {k: head.index(h) for k, h in keys.items()}
    rows = layers["tbody"]
    assert [r[head.index("layer")][0] for r in rows] == [r["name"] for r in doc["layers"]]
    for row, want in zip(rows, doc["layers"], strict=True):
        for k, i in col.items():
            assert int(row[i][1]) == want[k] and row[i][0] == f"{want[k]:,}", (want["name"], k)
        assert row[head.index("output")][0] == "x".join(map(str, want["shape"]))
    foot = layers["tfoot"][0]
    for k, i in col.items():
        assert int(foot[i][1]) == doc["totals"][k]
    by_name = {r[0][0]: int(r[-1][1]) for r in totals["tbody"] if r[-1][1]}  # the last column: after the passes
    assert by_name["MACs"] == doc["totals"]["macs"] and by_name["params"] == doc["totals"]["params"]
    if "memory" in doc:
        assert doc["memory"]["after"] in by_name.values()
    if "bottleneck" in opts:
        assert "bottleneck total: 3 insertions" in text
    svg_el = [t for t, _ in page.tags if t == "svg"]
    assert len(svg_el) == 1


def test_svg_to_file_diff_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "diff.svg"
    code, _, err = inspect(capsys, str(ARCHS / "inception_naive.cnn"), "--pass", "bottleneck", "--diff",
                           "-f", "svg", "-o", str(out))
    assert code == 0, err
    root = ET.fromstring(out.read_bytes())
    texts = "".join(root.itertext())
    # README / ARCHITECTURES.md: the bottleneck pass takes the naive module from 854,196,224 to 271,351,808 MACs
    assert "854,196,224 MACs" in texts and "271,351,808 MACs" in texts and "inserted by the passes" in texts
    assert not root.findall(f".//{SVG}script")
    code, a, _ = inspect(capsys, str(ARCHS / "googlenet.cnn"), "-f", "svg", "--expand", "--color", "memory")
    code2, b, _ = inspect(capsys, str(ARCHS / "googlenet.cnn"), "-f", "svg", "--expand", "--color", "memory")
    assert code == code2 == 0 and a == b and "share of activation memory" in a
    _, collapsed, _ = inspect(capsys, str(ARCHS / "googlenet.cnn"), "-f", "svg")
    assert len(collapsed) < len(a) / 2 and "block: 14 layers" in collapsed
    # refused: --diff without a pass, drawing options with a text format, both --collapse and --expand
    code, _, err = inspect(capsys, str(ARCHS / "lenet5.cnn"), "-f", "svg", "--diff")
    assert code == 2 and "--diff" in err
    code, _, err = inspect(capsys, str(ARCHS / "lenet5.cnn"), "--color", "params")
    assert code == 2 and "only to --format svg or html" in err
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(ARCHS / "lenet5.cnn"), "-f", "svg", "--collapse", "--expand"])
    assert e.value.code == 2
    capsys.readouterr()


def test_hostile_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "<script>alert('x')<script onload='y'> & \"q\" ]]>.cnn"  # no '/': one file
    src = tmp_path / name
    src.write_text((ARCHS / "inception_naive.cnn").read_text().replace("network inception_naive\n", ""))
    code, svg_text, err = inspect(capsys, str(src), "-f", "svg", "--pass", "bottleneck", "--diff")
    assert code == 0, err
    root = ET.fromstring(svg_text.encode())
    assert not root.findall(f".//{SVG}script") and "<script" not in svg_text
    assert name in "".join(root.itertext())  # shown, as text
    code, html_text, _ = inspect(capsys, str(src), "-f", "html")
    assert code == 0
    page = parse_page(html_text)
    self_contained(page)
    assert html_text.count("<script") == 1 and "&lt;script&gt;" in html_text


def test_bench_chart_geometry() -> None:
    rows = [LayerTime("conv1", "conv 3x3", "n.cnn:3", 2.0, 1_000_000), LayerTime("pool1", "maxpool", "n.cnn:4", 1.0, 0),
            LayerTime("<fc>", "fc 10", "n.cnn:5", 0.5, 4_000_000)]
    c = chart(rows, batch=2, rate=100.0, info=["x"], title="t")
    assert c.rows == ("conv1", "pool1", "<fc>")
    time_bars = [b for b in c.bars if b.fill == "#4575b4"]
    assert [b.w for b in time_bars] == [TIME_W, TIME_W / 2, TIME_W / 4]
    assert all(0 <= b.x and b.x + b.w <= c.width and b.y + b.h <= c.height for b in c.bars)
    assert len({b.y for b in time_bars}) == 3
    # GFLOP/s = 2 x MACs x batch / time: conv1 2 * 1e6 * 2 / 2e-3 s = 2 GFLOP/s, 2% of 100
    assert any("2.0 GFLOP/s, 2% of the GEMM rate" in b.tooltip for b in c.bars)
    assert sum(1 for t in c.texts if t.text == "no MACs") == 1


TINY = """network tiny
input 2x8x8
c1: conv(4, 3, pad=1) relu
flatten
fc(3)
"""  # two kernels to compile (conv, fc): the test's time is Numba's


def test_bench_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "tiny.cnn"
    src.write_text(TINY)
    gen = tmp_path / "gen"
    common = ["bench", str(src), "--batch", "1", "--runs", "2", "--threads", "1", "-o", str(gen)]
    assert main([*common, "--report", str(tmp_path / "r.txt")]) == 2  # refused before compiling
    assert "must end in .html or .svg" in capsys.readouterr().err
    html_path, svg_path = tmp_path / "r.html", tmp_path / "r.svg"
    assert main([*common, "--report", str(html_path)]) == 0
    assert main([*common, "--report", str(svg_path)]) == 0  # the kernels come from Numba's cache now
    out = capsys.readouterr().out
    assert f"wrote {svg_path}" in out
    page = parse_page(html_path.read_text())
    self_contained(page)
    (table,) = page.tables
    head = [c for c, _ in table["thead"][0]]
    layers = [r[head.index("layer")][0] for r in table["tbody"]]
    assert layers == ["c1", "fc1"]
    macs = {r[head.index("layer")][0]: int(r[head.index("MACs per image")][1]) for r in table["tbody"]}
    assert macs == {"c1": 8 * 8 * 4 * 9 * 2, "fc1": 4 * 8 * 8 * 3}
    assert all(float(r[head.index("ms")][1]) > 0 for r in table["tbody"])
    root = ET.fromstring(svg_path.read_bytes())
    assert not root.findall(f".//{SVG}script") and "GEMM" in "".join(root.itertext())


@pytest.mark.parametrize(("doc", "argv"), [
    ("googlenet.svg", ["archs/googlenet.cnn"]),
    ("inception_bottleneck_diff.svg", ["archs/inception_naive.cnn", "--pass", "bottleneck", "--diff"]),
])
def test_docs_pictures_are_fresh(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], doc: str,
                                 argv: list[str]) -> None:
    """The README's pictures are what the README's commands draw today (rerun them if this fails)."""
    monkeypatch.chdir(ROOT)
    code, text, _ = inspect(capsys, *argv, "--format", "svg")
    assert code == 0
    assert text == (ROOT / "docs" / doc).read_text(encoding="utf-8"), f"regenerate docs/{doc} (README: Drawing)"
