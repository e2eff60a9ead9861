"""How close a float32 answer must be to the float64 reference, and why (shared by the tests).

Every float32 result in the suite is compared with the float64 reference executor
(``cnnc.runtime.reference``), never with another float32 result through a tolerance tuned to
one machine: batching, threads, the BLAS kernel (``OPENBLAS_CORETYPE``) and the CPU Numba
targets change the float32 summation order, and with it the last bits.

The measure is the relative error in the max norm, ``max|y - ref| / max|ref|``: it does not
blow up where one output happens to be near zero (an elementwise ``rtol`` does).

The bound: float32's unit roundoff is u = 2**-24 (6.0e-8). A dot product of length K summed
in any order is within K*u of exact relative to the sum of magnitudes (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., §3.1), and in practice within about sqrt(K)*u,
as rounding errors of either sign partly cancel (§3.5; blocked BLAS summation only helps).
Errors of successive layers add (He-normal weights keep every layer from amplifying its
input's relative error much), so a forward pass errs by about the sum of sqrt(K)*u over the
weight layers of its longest path. For the shipped networks that sum is at most 8.5e-5
(ResNet-50: 54 weight layers on its longest path; VGG-19: 6.4e-5 with K up to 25088 in fc6;
GoogLeNet: 3.5e-5, LeNet-5: 3.4e-6), hence 1e-4
for every network, batch size, thread count, BLAS kernel and CPU target. (Computed once with
networkx over ``archs/``: K = MACs / output elements per conv/fc layer.)
"""

from __future__ import annotations

import numpy as np

#: float32 unit roundoff
U32 = 2.0**-24
#: bound on :func:`rel_err` of a float32 forward pass against the float64 reference (see above)
TOL32 = 1e-4


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    """``max|y - ref| / max|ref|`` computed in float64."""
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(y, np.float64) - ref).max() / np.abs(ref).max())
