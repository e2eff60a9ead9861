"""ONNX Runtime as a benchmark peer: the source network exported by :func:`.export.to_onnx` with the
same weights, in an ONNX Runtime CPU session (all graph optimisations, ``intra_op_num_threads``
threads, one inter-op thread, no spinning between runs)."""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np

from . import require_onnxruntime
from .export import to_onnx


class OrtNet:
    """Call with a float32 batch; returns the network's output as computed by ONNX Runtime."""

    def __init__(self, g: nx.DiGraph, params: Mapping[str, np.ndarray], threads: int):
        ort = require_onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between runs: the timings are interleaved with cnnc's and PyTorch's, and ORT's
        # spinning threads would take the cores from the next one timed
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(to_onnx(g, params).SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]
