"""The HDF5 cache between extraction and training (DESIGN §5).

Modules, one job each: ``schema`` (the format), ``key`` (extraction key), ``fingerprint``
(content ids), ``shards`` (crash-safe sequence storage), ``assemble`` (split files by chunk
copy), ``manifest`` (the completeness record), ``lock`` (one writer per key), ``reader``
(open_cache, CacheDataset), ``verify`` and ``inspect`` (the `cache` CLI commands).
Nothing is imported here, so importing one part never pulls in torch or h5py for another.
"""
