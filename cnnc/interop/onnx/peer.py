"""ONNX Runtime as a benchmark peer: the source network exported by :func:`.export.to_onnx` with the
same weights, in an ONNX Runtime CPU session (all graph optimisations, ``intra_op_num_threads``
threads, one inter-op thread, its threads spinning as by default)."""

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
        # ORT's own default, spelled out: its threads spin between the parts of a run. It was turned off before
        # `cnnc bench` paused between engines (its spinning threads then took the cores from the engine timed
        # next); with the pause they no longer do (2-core EPYC VM, cnnc timed right after ORT spinning and right
        # after ORT not: MobileNet at batch 1 7.45 and 7.56 ms, ResNet-50 42.3 and 44.3, at batch 8 51.0 and
        # 52.1, 309.9 and 311.7), and turned off it slowed ORT itself: MobileNet at batch 1 11.65 ms against 6.55
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        self.session = ort.InferenceSession(to_onnx(g, params).SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]
