"""The README's language reference: every `cnn` example parses, and the figures it quotes hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnc.frontend import parse
from cnnc.graph import output_shape, totals

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```cnn\n(.*?)```", README, flags=re.S)


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("i", range(len(EXAMPLES)))
def test_example_parses(i: int) -> None:
    g = parse(EXAMPLES[i], source=f"README example {i + 1}")
    assert totals(g).activations > 0


def test_vgg11_example() -> None:
    g = next(parse(e) for e in EXAMPLES if "network vgg11" in e)
    # VGG-11 (config A): 132,863,336 params (torchvision's vgg11), 7.6 G MACs
    assert totals(g).params == 132_863_336
    assert output_shape(g) == (1000,)


def test_resnet_example() -> None:
    g = next(parse(e) for e in EXAMPLES if "network resnet_blocks" in e)
    assert output_shape(g) == (128, 28, 28)
    assert g.nodes["r3"]["op"].kind == "add"


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.splitlines()
    block = lines[lines.index("```sh") + 1: lines.index("```sh") + 3]
    assert block[1] == "python3 -m pip install -e \".[test]\" && python3 -m pytest -q"
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert block[1] in ci
