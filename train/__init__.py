"""Training stage: fit heads on the cache, evaluate, plot, predict, compare runs.

Reads only the HDF5 cache; never imports an encoder at module level (DESIGN §1).
Import the entry points from their modules (``train.fit.run_train`` and friends) so that
importing this package stays cheap.
"""
