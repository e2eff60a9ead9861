"""Generated modules, one per network of ``archs/`` and target (``<net>_cpu.py``), built at -O1.

Do not edit: ``python -m cnnc.codegen.refresh`` rewrites them, and a test fails when they are
stale. Each imports only numpy and numba (``import generated.googlenet_cpu``).
"""
