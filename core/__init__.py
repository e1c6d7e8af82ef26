"""Stage-neutral helpers every stage shares: errors, devices, atomic writes, configs, torchrun ranks.

Nothing here imports a stage (data, extract, cache, models, train) or the CLI; tests/test_imports.py
checks that.
"""
