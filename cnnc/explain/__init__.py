"""Explaining the arithmetic: derivations per layer, receptive fields and claims.

* :mod:`.derive`: for each layer the lecture's formulas with the numbers filled in (output size,
  parameters, MACs, activation memory, merge channels), as records, text or JSON;
* :mod:`.receptive`: the receptive field of every tensor on the input, through branches;
* :mod:`.claims`: ``expect`` statements, checked against the graph, with the cause of a failure
  where one can be verified.
"""
