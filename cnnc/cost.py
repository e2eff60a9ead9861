"""Cost analysis: weights, biases, multiply-accumulates, other arithmetic and activation
memory of one op, as exact integers (per image).

Conventions (DESIGN §3, ARCHITECTURES.md):

* MACs count conv and fc only: conv ``Hout*Wout*Cout*k*k*Cin/groups``, fc ``in*out``.
* ``other_ops`` counts the rest apart: pooling ``C*Hout*Wout*k*k`` (compares or adds),
  LRN ``C*H*W*(size + 3)`` (window sum of squares, then scale, power and divide),
  batchnorm ``2*C*H*W``, relu/add ``elements*(inputs-1 or 1)``, softmax ``3*elements``,
  gap ``C*H*W``.
* ``activations`` is the number of output elements an op allocates per image. In-place
  element-wise ops (relu, dropout, softmax) and views (flatten, pass-made slice) allocate nothing, so they
  count 0: VGG16's activation total is then the lecture's 15,237,608 with the input.
* Batchnorm's ``weights`` and ``biases`` are its affine gamma and beta; its running
  statistics are buffers, not parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod

from .ops import KINDS, Op
from .shapes import Shape


@dataclass(frozen=True)
class Cost:
    weights: int = 0
    biases: int = 0
    macs: int = 0
    other_ops: int = 0
    activations: int = 0

    @property
    def params(self) -> int:
        return self.weights + self.biases

    def as_dict(self) -> dict[str, int]:
        d = asdict(self)
        d["params"] = self.params
        return d

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.weights + other.weights,
            self.biases + other.biases,
            self.macs + other.macs,
            self.other_ops + other.other_ops,
            self.activations + other.activations,
        )


def op_cost(op: Op, ins: list[Shape], out: Shape) -> Cost:
    """The cost of ``op`` with inputs ``ins`` producing ``out`` (one image)."""
    k = op.kind
    n_out = prod(out)
    spec = KINDS.get(k)
    acts = 0 if spec is not None and spec.in_place else n_out
    if k == "input":
        return Cost(activations=n_out)
    if k == "slice":  # pass-made channel view: no copy, no memory
        return Cost()
    if k == "conv":
        cin = ins[0][0]
        kk = op["kernel"]
        w = op["filters"] * (cin // op["groups"]) * kk * kk
        b = op["filters"] if op["bias"] else 0
        macs = n_out * kk * kk * (cin // op["groups"])
        other = (n_out if op.get("act") == "relu" else 0) + (n_out if op.get("residual") else 0)
        return Cost(w, b, macs, other, acts)
    if k == "fc":
        n_in = prod(ins[0])
        w = n_in * op["out"]
        b = op["out"] if op["bias"] else 0
        other = n_out if op.get("act") == "relu" else 0
        return Cost(w, b, w, other, acts)
    if k in ("maxpool", "avgpool"):
        return Cost(other_ops=n_out * op["kernel"] ** 2, activations=acts)
    if k == "gap":
        return Cost(other_ops=prod(ins[0]), activations=acts)
    if k == "lrn":
        return Cost(other_ops=n_out * (op["size"] + 3), activations=acts)
    if k == "batchnorm":
        c = ins[0][0]
        return Cost(weights=c, biases=c, other_ops=(3 if op.get("act") == "relu" else 2) * n_out, activations=acts)
    if k in ("relu", "relu6"):
        return Cost(other_ops=n_out, activations=acts)
    if k == "softmax":
        return Cost(other_ops=3 * n_out, activations=acts)
    if k == "add":
        fused = n_out if op.get("act") == "relu" else 0
        return Cost(other_ops=n_out * (len(ins) - 1) + fused, activations=acts)
    return Cost(activations=acts)  # concat, flatten, dropout and pass-made ops
