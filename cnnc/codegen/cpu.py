"""The CPU backend: a :class:`~cnnc.codegen.schedule.Plan` rendered as a Numba module.

Kernel strategy (DESIGN §5, measured on the shared 2-core machine):

* A small, fixed set of generic kernels (shapes are arguments), emitted only when the
  network uses them: compile time grows with the number of *kinds* of layer, not layers.
  ``cache=True`` stores the machine code beside the module. No ``parallel=True``: each such
  kernel costs seconds to compile, and ``np.dot`` inside a ``prange`` cannot be cached.
* Each convolution runs one strategy of :mod:`cnnc.codegen.kernels`, chosen by its cost
  model or forced (``--kernel``): im2col + GEMM through BLAS (``np.dot`` inside ``@njit``
  calls SciPy's OpenBLAS), a 1x1 conv as one GEMM on the input in place or in register blocks
  without BLAS (vector code built with llvmlite in a Numba intrinsic), register blocks on a
  first conv's phase planes (``direct``), direct depthwise kernels (over pixels, or over a group
  of channels in the lanes), Winograd F(2x2,3x3), F(4x4,3x3) and F(2x2,5x5) with the weight
  transform done in ``Model``. The chosen kernel is named in the step's comment; bias, a fused
  residual (``fuse_add``: the second input, added before the activation; it may be the output's
  own memory, each element read before it is written) and fused ReLU are its epilogue, in every
  strategy.
  A residual add left unfused applies its fused ReLU as it writes the sum.
* One thread pool, the module's own: the serial kernels release the GIL and each heavy
  step is split into independent parts (images, bands of output rows, channels, output
  features) run by the caller and helper threads that sleep when idle, each thread on a CPU
  of its own while a call runs. BLAS runs one
  thread per call. Letting OpenBLAS own the threads was fine on an idle machine but, with
  other processes on the cores, its spinning workers made one 5x5 conv take 188 ms instead
  of 9 ms (single-threaded); Numba's OpenMP pool fought OpenBLAS's in the same way. Runs of
  steps whose weights are light next to their tensors instead share the batch out once, each
  thread taking its own images through the whole run (:mod:`cnnc.codegen.image_runs`).
* Tensors between the kernels vectorised over channels may lie blocked (NCHWc) instead of NCHW, where no other
  step reads them (:mod:`cnnc.codegen.layout`); a 1x1 conv between two such tensors runs ``direct1x1_oc``.
* An FC layer runs the blocks vectorised over output channels with the images as the pixels,
  its weight packed in ``Model`` and read once per call (panels of output features split
  across threads), at batch 1 as fast as BLAS's GEMV and at batch 8 about twice BLAS's GEMM.

Sizes the kernels need (im2col scratch, tiling) are computed here and in the strategy
modules, never in templates.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

from ..shapes import fmt_shape
from .common import context
from .image_runs import image_runs
from .kernels import STRATEGIES, Choice, decider, shape_of_step, winograd
from .layout import Layout, plan_layouts
from .layout import describe as describe_layout
from .render import render
from .schedule import INPUT_BUFFER, Plan, Ref, Step, schedule

if TYPE_CHECKING:
    import networkx as nx

TARGET = "cpu"

#: the order kernels appear in a module (deterministic output)
KERNELS = ("epilogue", "gather", "conv2d", "conv1x1", "blocks", "planes", "depthwise", "winograd", "kn2row", "linear",
           "maxpool2d", "avgpool2d", "global_avgpool", "lrn", "relu", "softmax", "batchnorm", "copy", "add", "relu6")


def _spatial(ref: Ref) -> tuple[int, int, int]:
    """``(C, H, W)`` of a tensor; a flat ``(F,)`` counts as ``(F, 1, 1)``."""
    s = ref.shape
    if len(s) == 3:
        return s[0], s[1], s[2]
    return s[0], 1, prod(s[1:]) if len(s) > 1 else 1


def _call(step: Step, scratch: dict[str, int]) -> str:
    """The Python call line of one step (every number already computed)."""
    k = step.kind
    out = step.output
    if k == "concat":
        return ""
    if k == "copy":
        (x,) = step.inputs
        return f"copy({x.buffer}, {x.offset}, {x.size}, {out.buffer}, {out.offset})"
    if k == "conv":
        sh = shape_of_step(step)
        choice: Choice = step.attrs["choice"]
        line = STRATEGIES[choice.kernel].call(step, sh, scratch)
        if choice.small is None:
            return line
        small = STRATEGIES[choice.small].call(step, sh, scratch)
        return f"if n < {choice.below}:\n            {small}\n        else:\n            {line}"
    if k == "fc":
        (x,) = step.inputs
        nm = repr(step.weights)
        return (f"linear({x.buffer}, {x.offset}, {x.size}, W[{nm}], B[{nm}], {out.buffer}, {out.offset}, "
                f"{out.size}, {step.act == 'relu'})")
    if k in ("maxpool", "avgpool"):
        (x,) = step.inputs
        op = step.op
        c, h, w = _spatial(x)
        _, ho, wo = out.shape
        args = (f"{x.buffer}, {x.offset}, {c}, {h}, {w}, {out.buffer}, {out.offset}, {ho}, {wo}, "
                f"{op['kernel']}, {op['stride']}, {step.attrs['pad']}")
        if k == "maxpool":
            return f"{maxpool_kernel(h, w)}({args})"
        return f"avgpool2d({args}, {bool(op.get('count_pad', True))})"
    if k == "gap":
        (x,) = step.inputs
        c, h, w = _spatial(x)
        return f"global_avgpool({x.buffer}, {x.offset}, {c}, {h * w}, {out.buffer}, {out.offset})"
    if k == "lrn":
        (x,) = step.inputs
        op = step.op
        c, h, w = _spatial(x)
        return (f"lrn({x.buffer}, {x.offset}, {c}, {h * w}, {out.buffer}, {out.offset}, {op['size']}, "
                f"{float(op['alpha'])!r}, {float(op['beta'])!r}, {float(op['k'])!r})")
    if k in ("relu", "relu6"):
        (x,) = step.inputs
        return f"{k}({x.buffer}, {x.offset}, {x.size}, {out.buffer}, {out.offset})"
    if k == "softmax":
        (x,) = step.inputs
        c = x.shape[0]
        return f"softmax({x.buffer}, {x.offset}, {c}, {x.size // c}, {out.buffer}, {out.offset})"
    if k == "batchnorm":
        (x,) = step.inputs
        c = x.shape[0]
        nm = repr(step.node)
        return (f"batchnorm({x.buffer}, {x.offset}, {c}, {x.size // c}, W[{nm}], B[{nm}], "
                f"{out.buffer}, {out.offset}, {step.act == 'relu'})")
    if k == "add":
        # pairwise into the output; a fused ReLU rides on the last pair (the sum is complete there)
        a, b, *rest = step.inputs
        pairs = [(a, b)] + [(out, r) for r in rest]
        lines = [f"add({x.buffer}, {x.offset}, {r.buffer}, {r.offset}, {out.size}, {out.buffer}, {out.offset}, "
                 f"{step.act == 'relu' and i == len(pairs) - 1})" for i, (x, r) in enumerate(pairs)]
        return "\n        ".join(lines)
    raise AssertionError(f"no CPU kernel for {k!r}")


#: the largest input image (pixels) max pooling runs with a group of channels in the vector lanes (``maxpool_oc``, in
#: the register blocks' template); larger ones run the direct kernel over each channel's pixels (``maxpool2d``).
#: Measured, one thread at batch 1, maxpool_oc against maxpool2d: 0.27-0.76x the time on the pools of archs/ up to
#: 112x112 (NiN's 384x13x13 3x3/2 0.27x, ResNet's 64x112x112 3x3/2 0.69x, GoogLeNet's 480x28x28 3x3/1 0.76x), 0.90x
#: on 150x150, 1.33x on VGG's 224x224 2x2 (at batch 8 on two threads 112x112 and smaller: 0.35-0.68x)
POOL_LANES_PIXELS = 160 * 160


def maxpool_kernel(h: int, w: int) -> str:
    """The kernel a max pool of an ``h x w`` input runs (see :data:`POOL_LANES_PIXELS`)."""
    return "maxpool_oc" if h * w <= POOL_LANES_PIXELS else "maxpool2d"


def _template_of(step: Step) -> str | None:
    """The kernel template a step other than a conv calls into (None: it calls none)."""
    if step.kind == "maxpool":
        _, h, w = _spatial(step.inputs[0])
        return "blocks" if maxpool_kernel(h, w) == "maxpool_oc" else "maxpool2d"
    return _KERNEL_OF.get(step.kind)


#: kernel templates that call into another one: depthwise and maxpool2d share the phase-plane split, linear runs the
#: blocks vectorised over output channels
_TEMPLATE_NEEDS = {"depthwise": "planes", "maxpool2d": "planes", "linear": "blocks"}

_KERNEL_OF = {"fc": "linear", "avgpool": "avgpool2d",
              "gap": "global_avgpool", "lrn": "lrn", "relu": "relu", "relu6": "relu6", "softmax": "softmax",
              "batchnorm": "batchnorm", "copy": "copy", "add": "add"}


def _comment(step: Step) -> str:
    place = " (in place)" if step.inplace and step.kind != "concat" else ""
    shapes = ""
    if step.inputs:
        ins = ", ".join(fmt_shape(r.shape) for r in step.inputs)
        shapes = f": {ins} -> {fmt_shape(step.output.shape)}"
    kernel = ""
    if step.kind == "conv":
        kernel = f" [kernel: {step.attrs['choice'].text()}{describe_layout(step.attrs['layout'])}]"
    return f"{step.where} {step.node} {step.what}{place}{shapes}{kernel}"


def conv_layouts(plan: Plan) -> dict[int, Layout]:
    """``{index of a conv step: Layout}``: each conv's strategy (the cost model's, or the one forced) and which of its
    tensors lie blocked (:mod:`cnnc.codegen.layout`, which may move a 1x1 conv to ``direct1x1_oc`` for it)."""
    decide = decider()
    chosen = {i: decide(shape_of_step(s), plan.kernels.get(s.node)) for i, s in enumerate(plan.steps)
              if s.kind == "conv"}
    return plan_layouts(plan, chosen)


def layer_choices(g: nx.DiGraph) -> dict[str, Choice]:
    """``{conv layer: Choice}`` as ``g``'s CPU module runs them: :func:`~cnnc.codegen.kernels.choices`, with the 1x1
    convs :func:`conv_layouts` moves to ``direct1x1_oc`` for blocked tensors (what ``cnnc inspect`` shows)."""
    plan = schedule(g)
    return {plan.steps[i].node: lay.choice for i, lay in conv_layouts(plan).items()}


def generate(plan: Plan) -> str:
    """The CPU module's source text for ``plan``."""
    ctx: dict[str, Any] = context(plan, TARGET)
    scratch = {"cols": 0, "tmp": 0}
    transforms = []
    layouts = conv_layouts(plan)
    for i, s in enumerate(plan.steps):
        if s.weights is not None:
            s.attrs["has_bias"] = plan.weights[s.weights].has_bias
        if s.kind == "conv":
            sh = shape_of_step(s)
            s.attrs["layout"] = layouts[i]
            s.attrs["choice"] = choice = layouts[i].choice
            for name in choice.names():
                t = STRATEGIES[name].transform(s, sh)
                if t is not None:
                    transforms.append({"key": t[0], "expr": t[1]})
        if s.kind == "fc":  # linear's blocks read the weight packed (in place of the (O, F) matrix)
            transforms.append({"key": s.weights, "expr": f"_oc_panels(self.W[{s.weights!r}], {s.output.size})"})
    calls = [{"comment": _comment(s), "call": _call(s, scratch), "index": i} for i, s in enumerate(plan.steps)]
    runs = [{"name": f"_steps_{first}_{end - 1}", "first": first, "last": end - 1, "calls": calls[first:end]}
            for first, end in image_runs(plan)]
    starts = {r["first"]: r for r in runs}
    body: list[dict[str, Any]] = []  # _run's lines: a step's call, or a run of steps by images
    i = 0
    while i < len(calls):
        r = starts.get(i)
        body.append(r or calls[i])
        i = r["last"] + 1 if r else i + 1
    run = {name for s in plan.steps if s.kind == "conv" for name in s.attrs["choice"].names()}
    used = {t for s in plan.steps if (t := _template_of(s)) is not None}
    used |= {t for name in run for t in (STRATEGIES[name].template, *STRATEGIES[name].needs)}
    wino = [v for v in winograd.VARIANTS if v.name in run]
    used |= {_TEMPLATE_NEEDS[t] for t in used if t in _TEMPLATE_NEEDS}
    if used & {STRATEGIES[n].template for n in STRATEGIES}:
        used.add("epilogue")  # every conv kernel's bias / residual / ReLU pass
    names = [b for b, _ in ctx["buffers"]]
    out = plan.output
    src = "x" if out.buffer == INPUT_BUFFER else out.buffer
    ctx.update(
        kernels=[k for k in KERNELS if k in used],
        calls=calls,
        body=body,
        runs=runs,
        checks_in_run=bool(runs) and runs[0]["first"] == 0,  # its threads check their images of the input
        buffer_sizes=tuple(size for _, size in ctx["buffers"]),
        buffer_names=(", ".join(names) + ("," if len(names) == 1 else "")) if names else "_",
        cols_size=scratch["cols"],
        tmp_size=scratch["tmp"],
        transforms=transforms,
        winograd=[winograd.kernel_terms(v) for v in wino],
        winograd_constants=winograd.constants(),
        output_expr=f"{src}[:, {out.offset}:{out.offset + out.size}]",
    )
    return render("cpu_module.j2", **ctx)
