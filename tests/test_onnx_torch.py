"""Networks built in PyTorch, exported with ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``, and the dynamo exporter), imported by cnnc: the cnnc reference equals PyTorch.

Bound: relative-norm 1e-4 between the float32 PyTorch module and cnnc's float64 reference on the
same float32 weights (the float32 rounding of a ~20-layer network, ~1e-6, with margin; a folded
batchnorm in the TorchScript export adds one more rounding per weight).
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from torch import nn  # noqa: E402

from cnnc.interop.onnx.importer import to_graph  # noqa: E402
from cnnc.interop.onnx.writer import to_cnn  # noqa: E402
from cnnc.runtime.reference import run  # noqa: E402

F = nn.functional


class Basic(nn.Module):
    """A ResNet basic block: two 3x3 convs with batchnorm, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layers = nn.Sequential(Basic(8, 8, 1), Basic(8, 8, 1), Basic(8, 16, 2), Basic(16, 16, 1),
                                    Basic(16, 32, 2), Basic(32, 32, 1))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def separable() -> nn.Module:
    """MobileNet-style depthwise-separable blocks with ReLU6 (ONNX Clip(0, 6))."""
    def block(cin, cout, s):
        return [nn.Conv2d(cin, cin, 3, s, 1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU6()]
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), *block(8, 16, 1), *block(16, 32, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5), nn.Softmax(dim=1))


class Pools(nn.Module):
    """The torch oracle's pooling seed (ceil rounding, padding, count_include_pad) in one output."""

    def forward(self, x):
        ys = [F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), F.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                                     count_include_pad=False),
              F.max_pool2d(x, 2, 2, 1, ceil_mode=True), F.avg_pool2d(x, 4, 3, 2)]
        return torch.cat([torch.flatten(y, 1) for y in ys], 1)


def lenetish() -> nn.Module:
    """The torch oracle's state_dict seed: conv, batchnorm, relu, ceil max pool, linear."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 6))


class Mixed(nn.Module):
    """The torch oracle's mixed seed (grouped conv, batchnorm, nested adds of branches, gap, softmax;
    torch writes LocalResponseNorm as a dozen primitive ops, refused below, so no LRN here)."""

    def __init__(self, lrn: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, groups=2)
        self.bn = nn.BatchNorm2d(6, eps=1e-3)
        self.act = nn.LocalResponseNorm(3, alpha=0.5, beta=0.6, k=1.5) if lrn else nn.ReLU()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = self.bn(self.conv(x))
        x = x + self.act(x) + x
        return F.softmax(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), 1)


def _randomise(m: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m.eval()


def export(m: nn.Module, x, dynamo: bool):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(m, (x,), f, dynamo=True, dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
        else:
            torch.onnx.export(m, (x,), f, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    return onnx.load_from_string(f.getvalue())


CASES = {
    "resnet": (ResNet, (3, 16, 16)),
    "separable": (separable, (3, 16, 16)),
    "pools": (Pools, (3, 9, 10)),
    "lenetish": (lenetish, (1, 12, 12)),
    "mixed": (Mixed, (4, 11, 11)),
}
PARAMS = [(n, False) for n in CASES] + [("resnet", True), ("separable", True)]


@pytest.mark.parametrize("name,dynamo", PARAMS, ids=[f"{n}-{'dynamo' if d else 'torchscript'}" for n, d in PARAMS])
def test_torch_export_imports_and_matches_pytorch(name, dynamo):
    make, shape = CASES[name]
    torch.manual_seed(1)
    m = _randomise(make())
    x = torch.randn((2,) + shape)
    model = export(m, x, dynamo)
    g, p, _ = to_graph(model, name)
    text, g3, p3 = to_cnn(g, p)
    with torch.no_grad():
        want = m(x).numpy()
    y = run(g3, p3, x.numpy().astype(np.float64))
    assert y.shape == want.shape
    assert np.linalg.norm(y - want) / np.linalg.norm(want) < 1e-4
    if name == "resnet":  # identity blocks and projection blocks: two blocks, widths as parameters
        assert len(re.findall(r"^block \w+\(w1\) = add", text, flags=re.M)) == 2
    if name == "separable":
        assert text.count("relu6") == 5


def test_an_unsupported_torch_layer_is_refused_naming_every_op():
    from cnnc.interop.onnx.importer import OnnxImportError

    model = export(_randomise(Mixed(lrn=True)), torch.randn(2, 4, 11, 11), dynamo=False)
    with pytest.raises(OnnxImportError) as e:
        to_graph(model, "mixed")
    msg = str(e.value)
    assert "unsupported ONNX operators" in msg
    for op in ("Div", "Pow", "Shape"):
        assert re.search(op + r" \(\d+ nodes?, first '/act/", msg), (op, msg)
