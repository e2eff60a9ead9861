"""Launch configurations of the CUDA kernels, computed in Python at compile time.

Every tile size, thread count and unrolled constant the CUDA templates use is computed
here and rendered into the generated module as a literal (templates hold no arithmetic;
numba.cuda needs shared-memory shapes as compile-time constants). Grid sizes that depend
on the batch are computed by the generated module from the per-layer constants this
module writes, once per batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: every kernel the CUDA templates can render, in the order they are written
KERNELS = ("conv_gemm", "gemm", "dwconv", "gemv", "pool", "gap", "lrn", "softmax", "channel_map", "add2", "relu6")

#: threads per block of the element-wise (grid-stride) kernels, and their grid cap
ELT_THREADS = 256
ELT_MAX_BLOCKS = 8192


@dataclass(frozen=True)
class GemmTiles:
    """The shared-memory tiling of ``conv_gemm`` and ``gemm``: a ``tm x tn`` output tile per
    block of ``tx * ty`` threads, K consumed ``tk`` at a time, ``rm x rn`` outputs per thread."""

    tm: int = 64
    tn: int = 64
    tk: int = 16
    tx: int = 16
    ty: int = 16

    def __post_init__(self) -> None:
        t = self.threads
        if self.tm % self.ty or self.tn % self.tx:
            raise ValueError("the thread grid must divide the output tile")
        if t % self.tn or t % self.tk or (self.tk * self.tn) % t or (self.tk * self.tm) % t:
            raise ValueError("the tile loads must divide evenly among the threads")

    @property
    def threads(self) -> int:
        return self.tx * self.ty

    def template_vars(self) -> dict[str, int]:
        t = self.threads
        return {
            "tm": self.tm, "tn": self.tn, "tk": self.tk, "tx": self.tx, "ty": self.ty,
            "threads": t,
            "rm": self.tm // self.ty, "rn": self.tn // self.tx,
            # a row stride of 2 (mod 32 banks) makes the transposed weight store conflict-free
            "tm_pad": self.tm + 2,
            "a_loads": self.tk * self.tm // t, "a_step": t // self.tk,
            "b_loads": self.tk * self.tn // t, "b_step": t // self.tn,
        }


@dataclass(frozen=True)
class GemvConfig:
    """``gemv``: ``rows`` warps per block, each weight row read once for ``batch`` images."""

    rows: int = 4
    batch: int = 8

    def template_vars(self) -> dict[str, object]:
        return {"rows": self.rows, "batch": self.batch, "threads": 32 * self.rows}


@dataclass(frozen=True)
class SoftmaxConfig:
    threads: int = 128

    def template_vars(self) -> dict[str, object]:
        halves = []
        h = self.threads // 2
        while h >= 1:
            halves.append(h)
            h //= 2
        return {"threads": self.threads, "halves": halves}


@dataclass(frozen=True)
class CudaConfig:
    """All launch constants of one generated module."""

    gemm: GemmTiles = field(default_factory=GemmTiles)
    gemv: GemvConfig = field(default_factory=GemvConfig)
    softmax: SoftmaxConfig = field(default_factory=SoftmaxConfig)
    #: fc layers switch from the GEMV to the tiled GEMM above this batch size
    gemv_max_batch: int = 8

    def template_vars(self, kernels: list[str]) -> dict[str, object]:
        return {
            "kernels": list(kernels),
            "t": self.gemm.template_vars(),
            "v": self.gemv.template_vars(),
            "s": self.softmax.template_vars(),
            "elt_threads": ELT_THREADS,
            "elt_max_blocks": ELT_MAX_BLOCKS,
            "gemv_max_batch": self.gemv_max_batch,
        }


DEFAULT = CudaConfig()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


_A = "float32[::1]"
_I = "int32"
_F = "float32"

#: argument types of every kernel (the generated module passes flat C-contiguous float32
#: device arrays, NumPy int32 sizes and float32 constants), for ``cuda.compile_ptx``
SIGNATURES: dict[str, tuple[str, ...]] = {
    "conv_gemm": (_A,) * 4 + (_I,) * 16 + (_A,) + (_I,) * 3,
    "gemm": (_A,) * 4 + (_I,) * 9 + (_A,) + (_I,) * 3,
    "dwconv": (_A,) * 4 + (_I,) * 16,
    "gemv": (_A,) * 4 + (_I,) * 8,
    "pool": (_A,) * 2 + (_I,) * 15,
    "gap": (_A,) * 2 + (_I,) * 7,
    "lrn": (_A,) * 2 + (_I,) * 4 + (_F,) * 3 + (_I,) * 4,
    "softmax": (_A,) * 2 + (_I,) * 6,
    "channel_map": (_A,) * 4 + (_I,) * 8,
    "add2": (_A,) * 3 + (_I,) * 10,
    "relu6": (_A,) * 2 + (_I,) * 6,
}


def signature(kernel: str) -> str:
    """The Numba signature string of ``kernel``."""
    return f"void({', '.join(SIGNATURES[kernel])})"
