"""Kairoi's benchmarks: ``make bench`` (``python -m benchmarks``) prints figures, never asserts."""
