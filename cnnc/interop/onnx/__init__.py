"""ONNX interchange: :mod:`.export` writes a cnnc graph as an ONNX model, :mod:`.importer` reads an
ONNX model into a cnnc graph and :mod:`.writer` prints that graph as ``.cnn`` source (finding
repeated structures with :mod:`.blocks`). The op table is :mod:`.ops`.

``onnx`` (and ``onnxruntime`` for the tests and ``cnnc bench --compare onnxruntime``) are an optional
extra, ``pip install -e ".[onnx]"``; :func:`require_onnx` says so when they are missing.
"""

from __future__ import annotations

from typing import Any

from ...errors import CnncError

INSTALL = 'pip install -e ".[onnx]"'


def require_onnx() -> Any:
    """The ``onnx`` module, or a :class:`CnncError` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise CnncError(f"this needs the onnx package, which is not installed: {INSTALL}") from None
    return onnx


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a :class:`CnncError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise CnncError(f"this needs onnxruntime, which is not installed: {INSTALL}") from None
    return onnxruntime
