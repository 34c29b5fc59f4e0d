"""Kairoi: a time-based job scheduler server."""

__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it from here): no process pays
for importlib.metadata, several MiB each, to learn it."""
