"""``cnnc tune`` measures every eligible strategy per conv shape and records the fastest; ``--tuned`` uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnc.cli import main
from cnnc.codegen.kernels import STRATEGIES, ConvShape, eligible, tune

# one conv shape per strategy family: a 3x3 (im2col, both Winograds), a 1x1 (im2col, gemm1x1, direct1x1), a depthwise
NET = """
network tunable
input 8x12x12
a: conv(8, 3, pad=1) relu
b: conv(8, 1) relu
c: conv(8, 3, pad=1, groups=8) relu
d: conv(8, 3, pad=1) relu
"""


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("tune")
    net = d / "tunable.cnn"
    net.write_text(NET)
    out = d / "t.json"
    assert main(["tune", str(net), "-o", str(out), "--seconds", "0.005", "--batch", "1,2", "--threads", "1"]) == 0
    return net, out, json.loads(out.read_text())


def test_table_holds_every_distinct_shape_with_every_eligible_strategy_timed(table) -> None:
    _, _, doc = table
    assert doc["format"] == "cnnc-tune" and doc["version"] == 1 and doc["batches"] == [1, 2]
    assert len(doc["shapes"]) == 3  # a and d share one shape
    for k, e in doc["shapes"].items():
        sh = next(s for s in shapes_of(doc) if tune.key(s) == k)
        assert sorted(e["ms"]) == sorted(eligible(sh))
        assert all(len(v) == 2 and all(t > 0 for t in v) for v in e["ms"].values())
        # the choice is the least total time over the batch sizes
        assert sum(e["ms"][e["choice"]]) == min(sum(v) for v in e["ms"].values())
        assert e["model"] in STRATEGIES


def shapes_of(doc: dict) -> list[ConvShape]:
    return [ConvShape(8, 12, 12, 8, 12, 12, 3, 1, 1, 1), ConvShape(8, 12, 12, 8, 12, 12, 1, 1, 0, 1),
            ConvShape(8, 12, 12, 8, 12, 12, 3, 1, 1, 8)]


def test_tuned_choices_reach_the_module_and_kernel_wins(table, capsys: pytest.CaptureFixture[str]) -> None:
    net, out, doc = table
    # force a known choice into the table, then check inspect shows it for both layers of that shape
    key3 = tune.key(shapes_of(doc)[0])
    doc["shapes"][key3]["choice"] = "winograd4"
    out.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["inspect", str(net), "--tuned", str(out), "-f", "json"]) == 0
    layers = {r["name"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["a"]["kernel"] == layers["d"]["kernel"] == "winograd4"
    assert main(["inspect", str(net), "--tuned", str(out), "--kernel", "d=im2col", "-f", "json"]) == 0
    layers = {r["name"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["a"]["kernel"] == "winograd4" and layers["d"]["kernel"] == "im2col"


def test_a_new_table_replaces_the_shapes_it_measured_and_keeps_the_others(table) -> None:
    _, _, doc = table
    old = {**doc, "shapes": {**doc["shapes"], "1x9x9->1x9x9 k3/s1 p1 g1": {"choice": "im2col"}}}
    new = {**doc, "batches": [4], "shapes": {k: {**e, "choice": "im2col"} for k, e in doc["shapes"].items()}}
    got = tune.merge(old, new)
    assert got["batches"] == [4] and len(got["shapes"]) == 4
    assert all(e["choice"] == "im2col" for e in got["shapes"].values())


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such tuning table"),
    ("{", "invalid JSON"),
    ('{"shapes": {}}', "not a tuning table"),
    ('{"format": "cnnc-tune", "version": 9, "shapes": {}}', "version 9"),
    ('{"format": "cnnc-tune", "version": 1, "shapes": {"k": {"choice": "fast"}}}', "unknown strategy 'fast'"),
    ('{"format": "cnnc-tune", "version": 1, "shapes": {"8x12x12->8x12x12 k3/s1 p1 g8": {"choice": "winograd"}}}',
     "cannot use winograd: needs at least 8 input and output channels per group"),
])
def test_bad_tables_are_clear_errors(table, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     content: str | None, message: str) -> None:
    net = table[0]
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    assert main(["compile", str(net), "-o", str(tmp_path), "--tuned", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
