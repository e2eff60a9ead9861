"""archs/resnet18.cnn against an independent PyTorch model written with ``torch.nn`` modules.

The model below follows torchvision's ``resnet18`` layout and parameter names (conv1/bn1, layerI.J.conv1/bn1/
conv2/bn2, downsample.0/1, fc), written here by hand (torchvision is not a dependency). Its state_dict is
imported with :func:`cnnc.interop.torch.state_dict_to_params`, so this checks the ``.cnn`` file's layout (strides,
padding, where the projections sit, the batchnorm after every conv) independently of cnnc's own torch oracle, which
walks cnnc's graph.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnc.frontend import load  # noqa: E402
from cnnc.interop.torch import state_dict_to_params  # noqa: E402
from cnnc.runtime.reference import run  # noqa: E402

ARCHS = Path(__file__).resolve().parent.parent / "archs"
nn = torch.nn


class Basic(nn.Module):
    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, c, s) in enumerate(widths, 1):
            setattr(self, f"layer{i}", nn.Sequential(Basic(cin, c, s), Basic(c, c, 1)))
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))


def torch_name(name: str) -> str:
    """cnnc's parameter name -> torchvision's: ``layer2_1/b2/batchnorm1.w`` -> ``layer2.0.downsample.1.w``."""
    node, field = name.rsplit(".", 1)
    if node in ("conv1", "fc"):
        return name
    if node == "batchnorm1":
        return f"bn1.{field}"
    m = re.fullmatch(r"layer(\d)_(\d)/b(\d)/(conv|batchnorm)(\d)", node)
    assert m, name
    stage, block, branch, kind, index = m.groups()
    prefix = f"layer{stage}.{int(block) - 1}"
    if branch == "2":  # the projection shortcut
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}.{field}"
    return f"{prefix}.{'conv' if kind == 'conv' else 'bn'}{index}.{field}"


def test_resnet18_matches_an_independent_torch_model() -> None:
    torch.manual_seed(0)
    m = ResNet18().double()
    with torch.no_grad():  # non-trivial batchnorm statistics and affine parameters
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    m.eval()
    g = load(ARCHS / "resnet18.cnn")
    sd = m.state_dict()
    p = state_dict_to_params(sd, g, torch_name)  # strict: every tensor of the torch model is used
    learned = sum(a.size for k, a in p.items() if not k.endswith((".running_mean", ".running_var")))
    assert learned == 11_689_512  # issue 10: torchvision's resnet18 count
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224))
    m32 = m.float()  # compare the float32-rounded weights in float64 on both sides
    with torch.no_grad():
        want = m32.double()(torch.from_numpy(x)).numpy()
    got = run(g, p, x)
    # float64 on both sides with the same (float32-rounded) weights: only summation order differs
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-9
