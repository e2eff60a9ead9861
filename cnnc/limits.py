"""Resource limits: absurd networks fail fast with a clear error, before any allocation
or deep recursion. Every limit can be raised by setting the environment variable named
beside it (e.g. ``CNNC_MAX_NODES=1000000``) or by assigning the module attribute.
"""

from __future__ import annotations

import os


def _env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_NODES = _env("CNNC_MAX_NODES", 100_000)  # layers after expanding blocks and repeats
MAX_REPEAT = _env("CNNC_MAX_REPEAT", 10_000)  # the count of one `repeat`
MAX_DEPTH = _env("CNNC_MAX_DEPTH", 64)  # nesting of block calls, groups, merges and repeats
MAX_DIM = _env("CNNC_MAX_DIM", 1 << 20)  # any channel count, height, width, kernel, stride
MAX_TENSOR = _env("CNNC_MAX_TENSOR", 1 << 31)  # elements of one activation (per image)
MAX_PARAMS = _env("CNNC_MAX_PARAMS", 1 << 33)  # elements of one layer's weights
MAX_SOURCE = _env("CNNC_MAX_SOURCE", 4 << 20)  # bytes of a .cnn file
MAX_TOKENS = _env("CNNC_MAX_TOKENS", 100_000)  # tokens of a .cnn file (parsing costs ~20-50 us each)
