"""Benchmarks: each script measures one stage and writes JSON to ``bench/results/``.

``bench/report.py`` turns those JSON files into the performance table of the README.
Run them as modules from the repository root (``python -m bench.extract``): run as scripts,
``bench/extract.py`` and ``bench/train.py`` would shadow the ``extract`` and ``train`` packages.
"""
