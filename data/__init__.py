"""The data stage: a folder of gesture videos becomes a list of ``Sequence`` records.

Modules, one job each: ``discovery`` (find videos), ``frames`` (decode pixels), ``sampling`` (pick T
frames), ``splits`` (train/val/test), ``leakage`` (catch overlap between splits), ``sequences`` (tie them
together), ``augment`` (sequence-consistent augmentation), ``demo`` (synthetic dataset), ``summary``.
Nothing is imported here, so ``import data.sampling`` never pays for Albumentations or PyAV.
"""
