"""Benchmarks: `make bench` (python -m benchmarks).

They print numbers and write JSON; no pass/fail timing in tests.
"""
