"""Fault-injection suite: kill -9, full disks, corrupt and hostile files, concurrent writers, bad input.

A package so its conftest and helpers import as ``faults.*`` without shadowing ``tests/conftest.py``.
"""
