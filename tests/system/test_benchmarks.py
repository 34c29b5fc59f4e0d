"""The benchmarks run (on tiny sizes), so they cannot rot. No speed is asserted here."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import accept, amqp, compare, fire, scale
from benchmarks.peers.run import PEERS, Peer
from benchmarks.peers.run import run as run_peer
from tests.conftest import require_server


def test_accept_benchmark_runs() -> None:
    figures = accept.run(sets=300, rtts=20)
    assert figures["pipelined_sets"] == 300
    assert figures["sets_per_second"] > 0 and figures["parallel_sets_per_second"] > 0
    assert 0 < figures["rtt_p50_ms"] <= figures["rtt_p99_ms"]
    parts = ("durable_write_p50_ms", "bus_round_trip_p50_ms", "tcp_round_trip_p50_ms")
    assert all(figures[part] > 0 for part in parts)
    assert figures["floor_p50_ms"] == pytest.approx(sum(figures[part] for part in parts))


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
    assert figures["broker_burst_max_ms"] > 0
    assert 0 < figures["broker_spread_p50_ms"] <= figures["broker_spread_p99_ms"]


def test_scale_benchmark_runs() -> None:
    figures = scale.run(jobs=2_000, probe=500)
    assert figures["planned_jobs"] == 2_500
    assert figures["rss_mb"] > 0 and figures["disk_mb"] > 0
    assert 0 < figures["pss_mb"] <= figures["rss_mb"] <= figures["rss_mb_loaded"] + 50
    assert 0 < figures["start_to_serving_s"] < 60


@pytest.mark.timeout(300)
@pytest.mark.parametrize("peer", PEERS, ids=lambda peer: peer.name)
def test_every_peer_runs_every_workload(peer: Peer) -> None:
    """Each peer installs into its own environment (from PyPI, once) and runs its driver."""
    if peer.server is not None:
        require_server(peer.name, *peer.server)
    assert run_peer(peer, "w1", 50)["per_second"] > 0
    for workload in ("w2", "w3"):
        figures = run_peer(peer, workload, 20, spread=0.5)
        assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]


def test_the_comparison_picks_the_best_peer_and_says_how_kairoi_compares() -> None:
    kairoi = {
        "accept": {"sets_per_second": 50_000, "parallel_sets_per_second": 70_000,
                   "connections": 4, "rtt_p50_ms": 0.8, "rtt_p99_ms": 1.5},
        "amqp": {"burst_p50_ms": 90.0, "burst_max_ms": 150.0, "spread_p50_ms": 1.0,
                 "spread_p99_ms": 2.5},
    }  # fmt: skip

    def peer(rate: int, durable: bool, burst_max: float, spread_min: float) -> dict[str, Any]:
        burst = {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": burst_max, "min_ms": 0.1}
        spread = {"p50_ms": 0.5, "p99_ms": 2.0, "max_ms": 3.0, "min_ms": spread_min}
        return {"durable": durable, "w1": {"per_second": rate}, "w2": burst, "w3": spread}

    rows = compare.rows(kairoi, {
        "slow but durable": peer(500, True, 900.0, 0.1),
        "fast in memory": peer(40_000, False, 100.0, -5.0),
    })  # fmt: skip
    by_label = {label: (ours, best, verdict) for label, ours, best, verdict in rows}
    assert by_label["W1 SETs/s, durable, 1 connection"] == (
        "50,000",
        "500 (slow but durable)",
        "x100.0",
    )
    assert by_label["W2 burst max (ms), AMQP"] == (150.0, "100.0 (fast in memory)", "x1.5 worse")
    assert by_label["W2 burst max (ms), AMQP, durable peers"][2] == "x6.0 better"
    assert by_label["W3 spread p50 (ms), AMQP"] == (1.0, "0.5 (slow but durable)", "x2.0 worse")
    assert by_label["ran jobs before their due time"][1] == "fast in memory"
