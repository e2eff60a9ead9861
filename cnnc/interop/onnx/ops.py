"""The ONNX op table: which ONNX operator becomes which cnnc layer (README "ONNX" section).

:data:`IMPORTED` lists every op type ``cnnc import`` accepts, with what it becomes; any other op
type on the data path is refused (all of them in one error, with their counts and first nodes).
:data:`EXPORTED` lists what ``cnnc export`` writes for each cnnc layer kind.
"""

from __future__ import annotations

IMPORTED: dict[str, str] = {
    "Conv": "conv (square kernel, equal strides, no dilation; groups; symmetric pads, or extra bottom/right "
            "pads that ceil rounding gives)",
    "MaxPool": "maxpool (ceil_mode -> round=ceil)",
    "AveragePool": "avgpool (ceil_mode -> round=ceil, count_include_pad -> count_pad)",
    "GlobalAveragePool": "gap",
    "ReduceMean": "gap (over height and width; keepdims=0 adds a flatten)",
    "LRN": "lrn (odd size)",
    "BatchNormalization": "batchnorm (inference, constant statistics)",
    "Gemm": "fc (transA=0; transB either way; alpha and beta folded into the weights)",
    "MatMul": "fc without bias (a constant right operand), taking the bias of a following Add",
    "Add": "add of two activations, or the bias of a MatMul",
    "Sum": "add",
    "Flatten": "flatten (axis 1)",
    "Reshape": "flatten, when it flattens each image to a vector and keeps the batch",
    "Concat": "concat (channel axis)",
    "Relu": "relu",
    "Clip": "relu6 for Clip(0, 6); relu for Clip(0, none)",
    "Softmax": "softmax (over channels)",
    "Dropout": "dropout (inference)",
    "Identity": "nothing (the input passes on)",
    "Pad": "folded into the following conv or avgpool (constant zero padding of height and width)",
    "Constant": "a weight (not a layer)",
}

EXPORTED: dict[str, str] = {
    "conv": "Conv (ceil rounding as extra bottom/right pads)",
    "maxpool": "MaxPool",
    "avgpool": "AveragePool",
    "gap": "GlobalAveragePool",
    "lrn": "LRN (odd sizes)",
    "batchnorm": "BatchNormalization",
    "fc": "Gemm with transB=1 (a Flatten first on a CxHxW input)",
    "flatten": "Flatten",
    "concat": "Concat",
    "add": "Add (two branches) or Sum",
    "relu": "Relu",
    "relu6": "Clip(0, 6)",
    "softmax": "Softmax (axis 1)",
    "dropout": "Dropout",
    "slice": "Slice (pass-made, -O1)",
}
