"""The part of a generated module's template context every target shares.

:func:`context` turns a :class:`~cnnc.codegen.schedule.Plan` into the values the shared
templates (``module_header.j2``, ``params.j2``) render: the header, the contract's
constants (``INPUT_SHAPE``, ``OUTPUT_SHAPE``, ``PARAM_SHAPES``, ``LAYERS``, ``STEPS``) and
the effective-weight derivations that ``Model.__init__`` performs with NumPy. A backend
adds its kernels and step calls to this dictionary and renders its module template.
"""

from __future__ import annotations

from typing import Any

from .schedule import Plan


def context(plan: Plan, target: str) -> dict[str, Any]:
    """The shared template context of ``plan`` for ``target``."""
    passes = ", ".join(plan.passes) if plan.passes else "none (-O0)"
    derive = []
    for n, spec in plan.weights.items():
        derive.append({
            "node": n,
            "parts": spec.parts,
            "rows": spec.shape[0],
            "has_bias": spec.has_bias,
        })
    bns = [{"node": n, "channels": c, "eps": eps} for n, (c, eps) in plan.batchnorms.items()]
    return {
        "target": target,
        "name": plan.name,
        "source": plan.source,
        "version": plan.version,
        "passes": passes,
        "input_shape": plan.input_shape,
        "output_shape": plan.output_shape,
        "param_specs": plan.param_specs,
        "layers": plan.layers,
        "steps_table": [(s.node, s.what, s.where) for s in plan.steps],
        "derive": derive,
        "batchnorms": bns,
        "macs": plan.macs,
        "buffers": sorted(plan.buffers.items(), key=lambda kv: int(kv[0][3:])),
        "output": plan.output,
        "notes": plan.notes,
    }
