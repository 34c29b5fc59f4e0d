"""The benchmarks run (on tiny sizes), so they cannot rot. No speed is asserted here."""

from __future__ import annotations

from benchmarks import accept


def test_accept_benchmark_runs() -> None:
    figures = accept.run(sets=300, rtts=20)
    assert figures["pipelined_sets"] == 300
    assert figures["sets_per_second"] > 0
    assert 0 < figures["rtt_p50_ms"] <= figures["rtt_p99_ms"]
