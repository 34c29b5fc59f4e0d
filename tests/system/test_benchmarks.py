"""The benchmarks run (on tiny sizes), so they cannot rot. No speed is asserted here."""

from __future__ import annotations

from benchmarks import accept, amqp, fire


def test_accept_benchmark_runs() -> None:
    figures = accept.run(sets=300, rtts=20)
    assert figures["pipelined_sets"] == 300
    assert figures["sets_per_second"] > 0
    assert 0 < figures["rtt_p50_ms"] <= figures["rtt_p99_ms"]


def test_fire_benchmark_runs() -> None:
    figures = fire.run(jobs=20, spread_seconds=0.5, concurrency=4)
    assert figures["jobs"] == 20
    assert 0 <= figures["spread_p50_ms"] <= figures["spread_max_ms"]
    assert 0 <= figures["burst_p50_ms"] <= figures["burst_max_ms"]
    assert figures["executions_per_second"] > 0 and figures["ceiling_per_second"] > 0


def test_amqp_benchmark_runs(rabbitmq: str) -> None:
    figures = amqp.run(jobs=20, spread_seconds=0.5, volume=50)
    assert figures["publishes_per_second"] > 0
    assert 0 <= figures["spread_p50_ms"] <= figures["spread_max_ms"]
    assert 0 <= figures["burst_p50_ms"] <= figures["burst_max_ms"]
