"""Kairoi side by side with its peers: the peers' figures, and the table that compares them."""

from __future__ import annotations

from typing import Any

from benchmarks.peers.run import PEERS, run

Row = tuple[str, Any, str, str]
"""(figure, Kairoi's value, the best peer's value and name, how they compare)."""
Figures = dict[str, dict[str, Any]]
"""Per peer (or per Kairoi benchmark group), its figures."""
Where = tuple[str, str]
"""A peer figure: (workload, key)."""
W1 = ("w1", "per_second")


def measure_peers(w1_jobs: int, jobs: int, spread: float) -> Figures:
    """Every peer on W1 (``w1_jobs`` jobs due in an hour), W2 and W3 (``jobs`` jobs)."""
    figures: Figures = {}
    for peer in PEERS:
        if (reason := peer.unreachable()) is not None:
            print(f"skipped: {reason}")
            continue
        figures[peer.name] = {
            "durable": peer.durable,
            "w1": run(peer, "w1", w1_jobs),
            "w2": run(peer, "w2", jobs),
            "w3": run(peer, "w3", jobs, spread),
        }
    return figures


def rows(kairoi: Figures, peers: Figures) -> list[Row]:
    """The comparison, for the figures measured (a group not run leaves its rows out)."""
    table: list[Row] = []
    durable = {name: f for name, f in peers.items() if f["durable"]}
    if "accept" in kairoi:
        accept = kairoi["accept"]
        connections = accept["connections"]
        table += [
            _higher("W1 SETs/s, durable, 1 connection", accept["sets_per_second"], durable, W1),
            _higher(f"W1 SETs/s, durable, {connections} connections",
                    accept["parallel_sets_per_second"], durable, W1),
            _higher("W1 SETs/s vs any store (in memory too)", accept["sets_per_second"], peers, W1),
        ]  # fmt: skip
    for group, label in (("fire", "shell"), ("amqp", "AMQP")):
        if group in kairoi:
            figures = kairoi[group]
            for scope, among in (("", peers), (", durable peers", durable)):
                w2, w3 = _never_early(among, "w2"), _never_early(among, "w3")
                for key, peer_key in (("burst_p50_ms", "p50_ms"), ("burst_max_ms", "max_ms")):
                    table.append(_lower(f"W2 burst {peer_key[:-3]} (ms), {label}{scope}",
                                        figures.get(key), w2, ("w2", peer_key)))  # fmt: skip
                for key, peer_key in (("spread_p50_ms", "p50_ms"), ("spread_p99_ms", "p99_ms")):
                    table.append(_lower(f"W3 spread {peer_key[:-3]} (ms), {label}{scope}",
                                        figures[key], w3, ("w3", peer_key)))  # fmt: skip
    if "accept" in kairoi:
        table.append(("W4 round trip p50 (ms)", kairoi["accept"]["rtt_p50_ms"], "-", ""))
        table.append(("W4 round trip p99 (ms)", kairoi["accept"]["rtt_p99_ms"], "-", ""))
    early = [name for name, f in peers.items() if f["w2"]["min_ms"] < 0 or f["w3"]["min_ms"] < 0]
    if early:
        table.append(("ran jobs before their due time", "never", ", ".join(early), ""))
    return table


def _never_early(peers: Figures, workload: str) -> Figures:
    """The peers that ran no job of ``workload`` before its due time: an early run is a
    broken promise, not a better figure."""
    return {name: f for name, f in peers.items() if f[workload]["min_ms"] >= 0}


def _best(peers: Figures, path: Where, higher: bool) -> tuple[Any, str]:
    candidates = [(f[path[0]][path[1]], name) for name, f in peers.items()]
    if not candidates:
        return None, ""
    return max(candidates) if higher else min(candidates)


def _higher(
    label: str, ours: float, peers: dict[str, dict[str, Any]], path: tuple[str, str]
) -> Row:
    best, name = _best(peers, path, higher=True)
    if best is None:
        return label, ours, "-", ""
    return label, f"{ours:,}", f"{best:,} ({name})", f"x{ours / best:.1f}"


def _lower(
    label: str, ours: float | None, peers: dict[str, dict[str, Any]], path: tuple[str, str]
) -> Row:
    best, name = _best(peers, path, higher=False)
    if ours is None or best is None:
        return label, ours if ours is not None else "-", "-", ""
    verdict = f"x{best / ours:.1f} better" if ours <= best else f"x{ours / best:.1f} worse"
    return label, ours, f"{best} ({name})", verdict
