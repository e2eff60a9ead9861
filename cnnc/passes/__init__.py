"""Graph passes and the annotations they leave for code generation.

A pass is a function ``graph -> new graph`` (it never mutates its input). The contract
below is what code generation (``cnnc.codegen``) and the reference executor rely on;
a graph without any of these annotations (``-O0``) is always valid.

Annotations a pass may leave (all optional):

* ``g.graph["params"]``: the source network's parameter list ``[(name, shape), ...]``
  as ``cnnc.graph.param_specs`` gave it before any pass. Generated modules expose this
  list as ``PARAM_SHAPES`` at every ``-O`` level, so one ``.npz`` serves all levels.
* ``g.graph["passes"]``: the names of the passes applied, in order (for headers).
* conv/fc/add op attribute ``act``: ``"relu"`` when a following ReLU was fused into the
  kernel's epilogue (absent or None otherwise); an add applies it to the sum.
* conv op attribute ``residual``: True when a residual add was fused into the conv's epilogue; the
  conv then has two inputs ``[x, r]`` (``r`` of the output's shape) and computes
  ``act(conv(x) + bias + r)``.
* conv/fc op attribute ``parts``: a tuple of dicts, one per source layer whose
  parameters make up this node's weights, in output-channel order::

      {"node": <source conv/fc name>, "out": <its output channels>, "bias": bool,
       "bn": <source batchnorm name or None>, "eps": float}

  The node's effective weight is the concatenation along axis 0 of each part's weight
  ``params[node + ".weight"]``, scaled per output channel by
  ``gamma / sqrt(running_var + eps)`` when ``bn`` is set; its effective bias is the
  concatenation of each part's bias (zeros when ``bias`` is false), then
  ``(b - running_mean) * scale + beta`` when ``bn`` is set. A node without ``parts``
  uses its own ``<name>.weight``/``<name>.bias``. ``cnnc.passes.params.effective_params``
  computes this in NumPy; generated modules do the same inside ``Model.__init__``.
* op kind ``slice`` (attrs ``start``, ``stop``): channels ``[start, stop)`` of its single
  input, a view (no copy, no activation memory). Horizontal fusion feeds the former
  consumers of each fused conv through a slice.
* concat op attribute ``inplace``: True when every input writes straight into its
  channel slice of the concat's buffer (no copy kernel).
* node data ``buffer`` (int) and ``g.graph["buffers"]`` (``{id: elements per image}``):
  the memory plan; nodes sharing an id reuse one buffer (their lifetimes do not overlap,
  or the op is in place).
* ``g.graph["memory"]`` (``{"before": int, "after": int}``, elements per image): activation
  memory without and with the plan; ``g.graph["reports"]`` (``{pass name: plain data}``):
  what a pass did (``bottleneck`` insertions and totals, ``hfuse`` fusions). Informative
  only: nothing needs them to run a graph.

The passes themselves, their order and options: :mod:`cnnc.passes.manager`.
"""
