"""Real data end to end: train a small CNN on scikit-learn's handwritten digits in PyTorch, export it
to ONNX, ``cnnc import`` it, ``cnnc compile`` it, and run the generated Numba module on the held-out
images. Prints both accuracies and how often the labels agree.

    python examples/digits/digits.py [--workdir DIR]

The data set ships inside scikit-learn (1,797 8x8 grey images, no download). Everything is seeded;
training takes a few seconds on one core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0


@dataclass
class Result:
    torch_accuracy: float
    cnnc_accuracy: float
    agreement: float  # fraction of held-out images where cnnc's label equals PyTorch's
    test_images: int
    cnn_text: str


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits as float32 (N, 1, 8, 8) in [0, 1], split 75/25 (stratified, seeded)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)


def train(x: np.ndarray, y: np.ndarray, epochs: int = 30):
    """A small CNN (two 3x3 conv + pool stages, one hidden fc), trained with Adam on minibatches."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 16x4x4
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),                     # 32x2x2
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def main(workdir: str | None = None, quiet: bool = False) -> Result:
    import torch

    from cnnc.cli import main as cnnc
    from cnnc.codegen.loader import import_path

    work = Path(workdir or tempfile.mkdtemp(prefix="cnnc_digits_"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = data()
    model = train(x_train, y_train)
    with torch.no_grad():
        torch_labels = model(torch.from_numpy(x_test)).argmax(1).numpy()

    # 1. PyTorch -> ONNX (a dynamic batch)
    onnx_path = work / "digits.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(onnx_path), dynamo=False,
                          input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "N"}})
    # 2. ONNX -> .cnn + .npz, 3. .cnn -> a Numba module (the same commands a user types)
    cnn_path = work / "digits.cnn"
    out = sys.stdout if not quiet else open(work / "log.txt", "w")  # noqa: SIM115 - closed below
    try:
        saved, sys.stdout = sys.stdout, out
        assert cnnc(["import", str(onnx_path), "-o", str(cnn_path), "--name", "digits"]) == 0
        assert cnnc(["compile", str(cnn_path), "-o", str(work / "generated")]) == 0
    finally:
        sys.stdout = saved
        if quiet:
            out.close()
    # 4. run the generated module on the held-out split
    net = import_path(work / "generated" / "digits_cpu.py")
    scores = net.Model(net.load_params(str(cnn_path.with_suffix(".npz"))))(np.ascontiguousarray(x_test))
    cnnc_labels = scores.argmax(1)
    res = Result(float((torch_labels == y_test).mean()), float((cnnc_labels == y_test).mean()),
                 float((cnnc_labels == torch_labels).mean()), len(y_test), cnn_path.read_text())
    if not quiet:
        print(f"\n{cnn_path}:\n{res.cnn_text}")
        print(f"held-out images: {res.test_images}")
        print(f"PyTorch accuracy: {res.torch_accuracy:.2%}")
        print(f"cnnc accuracy:    {res.cnnc_accuracy:.2%}")
        print(f"labels agree on:  {res.agreement:.2%}")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where the ONNX, .cnn, .npz and generated module go (default: a temp dir)")
    main(ap.parse_args().workdir)
