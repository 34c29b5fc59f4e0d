"""Kairoi's fuzzers: ``python -m fuzz`` (or ``make fuzz``) runs them all.

- ``fuzz.targets``: coverage-guided targets for atheris (libFuzzer for Python), one module
  each with a ``TestOneInput(data)``: the KCP session and parsers, the schedule parser, the
  message codec. ``fuzz.engine`` runs one under atheris, or replays a corpus without it.
- ``fuzz.seeds``: each target's seed corpus, taken from the examples in the docs.
- ``fuzz.sockets``: a real ``kairoi serve`` fed generated lines over several connections,
  checked for replies in order, the same process ids, bounded memory and intact data.

See docs/security.md#fuzzing.
"""
