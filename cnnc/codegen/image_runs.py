"""Which runs of a CPU plan's steps take the batch a share of images per thread.

By default each step is split across the module's threads on its own (by images, bands of rows, channels or
features, as its kernel chooses) and handed out anew, then the next step waits for every part. Over a *run* of
consecutive steps the module can instead share the batch out once: each thread takes its own images through every
step of the run with its kernels unsplit (``_by_images`` in ``cpu_runtime.j2``; below as many images as threads the
run's steps split as usual). That saves a hand-off per step (35-45 us on a 2-core VM) and keeps each thread on its
own images' tensors. It costs where a step's weights outweigh its tensors: both threads then read all of the
weights where a split by output channels has each read its half (ResNet-18's 512->512 3x3 convs on 7x7 ran 1.16x
as long that way at batch 8).

So a step joins a run where its weights have at most :data:`WEIGHT_RATIO` times the elements of one image's input
and output tensors together; a run is at least :data:`MIN_STEPS` such steps in a row. With every step of a network
in one run (2-core AMD EPYC, 2 threads, batch 8, against splitting every step): ResNet-18 0.99-1.05, its last
stage's 3x3 convs 1.16 (weights 47x an image's tensors; the share of 4 images also took them to the small-batch
strategy); every step of MobileNet, GoogLeNet and ResNet-50 as fast or faster, those of 10-23x included. With the rule
(``benchmarks/ab.py``, whole calls, one process, alternating): MobileNet v1 0.944-0.949, GoogLeNet 0.961-0.970,
AlexNet 0.968, VGG16 0.970, NiN 0.973-0.996, ResNet-50 0.982-0.988, ResNet-18 0.988.
"""

from __future__ import annotations

from math import prod

from .schedule import Plan, Step

#: a step's weights may have this many times the elements of one image's input and output tensors
WEIGHT_RATIO = 16
#: the fewest steps worth a run (one step alone splits by images, or better, as it is)
MIN_STEPS = 2


def _fits(plan: Plan, step: Step) -> bool:
    if step.weights is None:
        return True
    tensors = sum(r.size for r in step.inputs) + step.output.size
    return prod(plan.weights[step.weights].shape) <= WEIGHT_RATIO * tensors


def image_runs(plan: Plan) -> list[tuple[int, int]]:
    """``[(first, end)]``: the runs of ``plan.steps[first:end]`` that share the batch out by images, in order."""
    runs = []
    first = None
    for i, s in enumerate([*plan.steps, None]):
        if s is not None and _fits(plan, s):
            first = i if first is None else first
            continue
        if first is not None and i - first >= MIN_STEPS:
            runs.append((first, i))
        first = None
    return runs
