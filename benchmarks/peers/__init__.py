"""Peers: the schedulers a user would pick instead, run on the same workloads.

Each peer is installed from PyPI into a virtual environment of its own under
``benchmarks/scratch/peers/`` and driven by a small script of ours run with that
environment's Python (``drivers/``); the script prints its figures as one JSON object.
"""
