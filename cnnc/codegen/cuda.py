"""The CUDA backend: a :class:`~cnnc.codegen.schedule.Plan` -> a numba.cuda module.

Shared with the CPU backend: the schedule (steps, storage, buffers, names, weight
derivation), the Jinja environment, the module header and the parameter code. Declared
here: which kernel runs each step, with which launch configuration (computed in Python
from :mod:`cnnc.codegen.cuda_launch` and written as constants), and the CUDA templates
(``cuda_module.j2`` and ``cuda_kernels.j2``).

Storage on the device follows the schedule exactly: each buffer is one flat float32
device array of ``N * elements per image``; a :class:`~cnnc.codegen.schedule.Ref` becomes
the kernel arguments ``(buffer, image stride, element offset)``. The graph input gets a
device buffer of its own, filled by the one host-to-device copy of a call.

A conv with a fused residual (``fuse_add``) adds the residual in the epilogue of its GEMM kernel
(``conv_gemm``, ``gemm``), before the ReLU: one launch. A depthwise conv (``dwconv``: groups = input
channels) has no residual epilogue, so with a fused residual it runs without its activation, then one
``add2`` launch adds the residual in place and applies the ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from ..errors import CnncError
from .common import context
from .cuda_launch import DEFAULT, ELT_MAX_BLOCKS, ELT_THREADS, KERNELS, CudaConfig
from .cuda_ptx import ARCHS, arch_name, lookup
from .render import render
from .schedule import INPUT_BUFFER, Plan, Ref, Step

TARGET = "cuda"
#: the device buffer the output is compacted into when it shares a wider one
OUTPUT_BUFFER = "out"


@dataclass
class Launch:
    """One kernel launch: the kernel, its grid and block, and its arguments, all as Python
    expressions of the batch size ``n`` (rendered verbatim into ``Model._launches``)."""

    kernel: str
    grid: str
    block: int
    args: list[str]
    when: str = ""  # a condition on ``n`` ("" for always)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _ch(shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, pixels per channel) of a per-image shape; a flat (F,) is F channels of 1."""
    return (shape[0], prod(shape[1:])) if len(shape) > 1 else (shape[0], 1)


class _Lowering:
    """Turns steps into launches for one plan."""

    def __init__(self, plan: Plan, cfg: CudaConfig):
        self.plan = plan
        self.cfg = cfg
        self.sizes = dict(plan.buffers)
        self.sizes[INPUT_BUFFER] = prod(plan.input_shape)

    def buf(self, r: Ref) -> str:
        return f"B[{r.buffer!r}]"

    def where(self, r: Ref) -> list[str]:
        """``(image stride, element offset)`` of a ref, as int32 argument expressions."""
        return [f"_i({self.sizes[r.buffer]})", f"_i({r.offset})"]

    @staticmethod
    def ints(*vals: object) -> list[str]:
        return [f"_i({v})" for v in vals]

    def residual(self, s: Step) -> list[str]:
        """The residual arguments ``(z, image stride, offset, res)`` of a GEMM kernel's epilogue: the fused
        add's other input, or (no residual) the output buffer again with ``res`` 0, never read."""
        if s.op.get("residual"):
            r = s.inputs[1]
            return [self.buf(r)] + self.where(r) + self.ints(1)
        return [self.buf(s.output)] + self.where(s.output) + self.ints(0)

    def elt(self, kernel: str, arrays: list[str], total: int, rest: list[str]) -> Launch:
        return Launch(kernel, f"(_blocks(n * {total}),)", ELT_THREADS,
                      arrays + self.ints(f"n * {total}") + rest)

    def copy(self, src: Ref, dst: Ref, mode: int) -> Launch:
        c, hw = _ch(src.shape)
        return self.elt("channel_map", [self.buf(src), self.buf(dst), "ONE", "ONE"], c * hw,
                        self.ints(c, hw, mode) + self.where(src) + self.where(dst))

    def lower(self, s: Step) -> list[Launch]:
        k, op = s.kind, s.op
        y = s.output
        if k == "concat":
            return []  # in place: every branch wrote its channel slice
        if k == "copy":
            return [self.copy(s.inputs[0], y, 0)]
        x = s.inputs[0]
        relu = 1 if s.act == "relu" else 0
        depthwise = k == "conv" and op["groups"] == x.shape[0] > 1
        if depthwise and op.get("residual"):
            # dwconv has no residual epilogue: it runs without its activation, then one add2 (y += r, then the ReLU)
            plain = replace(s, inputs=[x], act=None, op=op.replace(residual=False))
            c, hw = _ch(y.shape)
            r = s.inputs[1]
            return self.lower(plain) + [
                self.elt("add2", [self.buf(y), self.buf(r), self.buf(y)], c * hw,
                         self.ints(c, hw) + self.where(y) + self.where(r) + self.where(y) + self.ints(relu))]
        t = self.cfg.gemm
        if k == "conv":
            cin, h, w = x.shape
            cout, ho, wo = y.shape
            kk, stride, pad, groups = op["kernel"], op["stride"], s.attrs["pad"], op["groups"]
            head = [self.buf(x), f"W[{s.weights!r}]", f"BIAS[{s.weights!r}]", self.buf(y)]
            if depthwise:
                return [self.elt("dwconv", head, cout * ho * wo,
                                 self.ints(cout, h, w, ho, wo, kk, kk, stride, pad, cout // cin)
                                 + self.where(x) + self.where(y) + self.ints(relu))]
            epilogue = self.ints(relu) + self.residual(s)
            if kk == 1 and stride == 1 and pad == 0 and groups == 1:
                return [Launch("gemm", f"(_cdiv(n * {ho * wo}, {t.tn}), {_cdiv(cout, t.tm)})", t.threads,
                               head + self.ints(f"n * {ho * wo}", cin, ho * wo, cout)
                               + self.where(x) + self.where(y) + epilogue)]
            mg = cout // groups
            return [Launch("conv_gemm", f"(_cdiv(n * {ho * wo}, {t.tn}), {_cdiv(mg, t.tm)}, {groups})",
                           t.threads,
                           head + self.ints(f"n * {ho * wo}", cin // groups, h, w, ho, wo, kk, kk, stride,
                                            pad, mg)
                           + self.where(x) + self.where(y) + epilogue)]
        if k == "fc":
            kdim, m = prod(x.shape), y.shape[0]
            head = [self.buf(x), f"W[{s.weights!r}]", f"BIAS[{s.weights!r}]", self.buf(y)]
            v = self.cfg.gemv
            small = self.cfg.gemv_max_batch
            return [
                Launch("gemv", f"({_cdiv(m, v.rows)}, _cdiv(n, {v.batch}))", 32 * v.rows,
                       head + self.ints("n", kdim, m) + self.where(x) + self.where(y) + self.ints(relu),
                       f"n <= {small}"),
                Launch("gemm", f"(_cdiv(n, {t.tn}), {_cdiv(m, t.tm)})", t.threads,
                       head + self.ints("n", kdim, 1, m) + self.where(x) + self.where(y) + self.ints(relu)
                       + self.residual(s), f"n > {small}"),
            ]
        if k in ("maxpool", "avgpool"):
            c, h, w = x.shape
            _, ho, wo = y.shape
            return [self.elt("pool", [self.buf(x), self.buf(y)], c * ho * wo,
                             self.ints(c, h, w, ho, wo, op["kernel"], op["stride"], s.attrs["pad"],
                                       int(k == "maxpool"), int(bool(op.get("count_pad", True))))
                             + self.where(x) + self.where(y))]
        c, hw = _ch(x.shape)
        if k == "gap":
            return [self.elt("gap", [self.buf(x), self.buf(y)], c, self.ints(c, hw) + self.where(x) + self.where(y))]
        if k == "lrn":
            consts = [f"_f({float(op[a])!r})" for a in ("alpha", "beta", "k")]
            return [self.elt("lrn", [self.buf(x), self.buf(y)], c * hw,
                             self.ints(c, hw, op["size"]) + consts + self.where(x) + self.where(y))]
        if k == "relu":
            return [self.copy(x, y, 1)]
        if k == "relu6":
            return [self.elt("relu6", [self.buf(x), self.buf(y)], c * hw,
                             self.ints(c * hw) + self.where(x) + self.where(y))]
        if k == "batchnorm":
            return [self.elt("channel_map", [self.buf(x), self.buf(y), f"BN[{s.node!r}][0]", f"BN[{s.node!r}][1]"],
                             c * hw, self.ints(c, hw, 3 if relu else 2) + self.where(x) + self.where(y))]
        if k == "softmax":
            return [Launch("softmax", f"(n * {hw},)", self.cfg.softmax.threads,
                           [self.buf(x), self.buf(y)] + self.ints(c, hw) + self.where(x) + self.where(y))]
        if k == "add":
            out: list[Launch] = []
            acc = s.inputs[0]
            for i, r in enumerate(s.inputs[1:], 2):
                last = relu if i == len(s.inputs) else 0  # the fused ReLU once the sum is complete
                out.append(self.elt("add2", [self.buf(acc), self.buf(r), self.buf(y)], c * hw,
                                    self.ints(c, hw) + self.where(acc) + self.where(r) + self.where(y)
                                    + self.ints(last)))
                acc = y
            return out
        raise CnncError(f"the CUDA backend has no kernel for step kind {k!r} (node {s.node!r})")


def kernel_context(kernels: list[str], cfg: CudaConfig = DEFAULT) -> dict[str, object]:
    return cfg.template_vars(kernels)


def kernel_sources(cfg: CudaConfig = DEFAULT) -> dict[str, str]:
    """Each kernel alone in a minimal module (for PTX compilation and its cache key)."""
    out = {}
    for name in KERNELS:
        body = render("cuda_kernels.j2", **kernel_context([name], cfg))
        out[name] = "import math\n\nfrom numba import cuda, float32\n" + body
    return out


def _kernel_table(kernels: list[str], launches: list[Launch], cfg: CudaConfig) -> list[dict[str, object]]:
    sources = kernel_sources(cfg)
    res = lookup({k: sources[k] for k in kernels})
    rows = []
    for k in kernels:
        threads = next(lc.block for lc in launches if lc.kernel == k)
        per_arch = {arch_name(cc): res[k].get(arch_name(cc)) for cc in ARCHS}
        rows.append({"kernel": k, "threads": threads, "launches": sum(lc.kernel == k for lc in launches),
                     "archs": per_arch})
    return rows


def generate(plan: Plan, cfg: CudaConfig = DEFAULT) -> str:
    """The source text of ``plan``'s CUDA module (deterministic)."""
    low = _Lowering(plan, cfg)
    out = plan.output
    buffers = [(INPUT_BUFFER, low.sizes[INPUT_BUFFER])] + sorted(plan.buffers.items(),
                                                                 key=lambda kv: int(kv[0][3:]))
    plan_steps = list(plan.steps)
    final: list[Launch] = []
    if low.sizes[out.buffer] != prod(out.shape):
        # The output shares a wider buffer. The one copy back to the host must move the output
        # alone: the last step writes it straight into a compact buffer of its own when it
        # computes the output (no extra launch), else a final kernel copies it there.
        compact = Ref(OUTPUT_BUFFER, 0, out.shape)
        low.sizes[OUTPUT_BUFFER] = prod(out.shape)
        buffers.append((OUTPUT_BUFFER, prod(out.shape)))
        last = plan_steps[-1] if plan_steps else None
        if (last is not None and last.kind not in ("concat", "copy") and last.output.buffer == out.buffer
                and last.output.offset == out.offset and prod(last.output.shape) == prod(out.shape)):
            # (the output may be a view of the last step's result, e.g. flatten after gap)
            plan_steps[-1] = replace(last, output=Ref(OUTPUT_BUFFER, 0, last.output.shape), inplace=False)
        else:
            final = [low.copy(out, compact, 0)]
        out = compact
    steps = []
    every: list[Launch] = []
    for s in plan_steps:
        launches = low.lower(s)
        every += launches
        steps.append({"node": s.node, "where": s.where, "what": s.what, "inplace": s.inplace,
                      "launches": launches})
    if final:
        every += final
        steps.append({"node": "output", "where": "-", "what": "copy the output out of its shared buffer",
                      "inplace": False, "launches": final})
    used = [k for k in KERNELS if any(lc.kernel == k for lc in every)]
    ctx = context(plan, TARGET)
    ctx.update(kernel_context(used, cfg))
    ctx.update({
        "cuda_steps": steps,
        "kernel_table": _kernel_table(used, every, cfg),
        "archs": [arch_name(cc) for cc in ARCHS],
        "device_buffers": buffers,
        "out_buffer": out.buffer,
        "input_buffer": INPUT_BUFFER,
        "weighted": list(plan.weights),
        "elt_threads": ELT_THREADS,
        "elt_max_blocks": ELT_MAX_BLOCKS,
    })
    return render("cuda_module.j2", **ctx)
