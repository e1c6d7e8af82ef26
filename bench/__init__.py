"""Benchmarks: each script measures one stage and writes JSON to ``bench/results/``.

``bench/report.py`` turns those JSON files into the performance table of the README.
"""
