"""The socket fuzzer: a real ``kairoi serve`` fed generated lines over several connections.

    python -m fuzz.sockets [--lines N] [--connections C] [--seed S]

Each connection sends batches of lines (fuzz.lines) and reads the replies before the next
batch; the client side parses what it sent with the server's own grammar, so it knows which
requests it made, in which order, even from random bytes. Checked, as faults:

- every request gets its reply, in order (request ids match; item lines carry the id of the
  request they belong to), each ``OK …`` or ``ERROR <code> "<reason>"``;
- no reply is ``ERROR internal`` or ``ERROR unavailable`` (every process is up all along);
- an over-long line gets its error and then, only then, the connection is closed;
- every child of the supervisor keeps its pid (read from the supervisor's ``process.started``
  events, never found by name) and its resident memory stays under a bound;
- at the end, every job a checked SET got ``OK`` for is there, planned at the time it was set.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.lines import KEEP, Batch, LineMaker
from kairoi.client.server import ServerProcess, Settings
from kairoi.frontend import kcp

CHILDREN = ("storage", "runner-0", "dispatcher", "frontend")
MAX_LINE_BYTES = 4096
BATCH = 200
REPLY_TIMEOUT = 60.0
MAX_RSS_MIB = 300
"""Resident memory no child may exceed (each idles at 20-60 MiB)."""
Report = dict[str, Any]
SHOWN = 20
"""Faults kept in full (the others are counted)."""


@dataclass
class Findings:
    faults: list[str] = field(default_factory=list)
    fault_count: int = 0
    acknowledged: dict[str, str] = field(default_factory=dict)
    tainted: set[str] = field(default_factory=set)
    lines: int = 0
    replies: int = 0
    reconnects: int = 0
    max_rss_mib: dict[str, float] = field(default_factory=dict)
    evidence: Path | None = None
    """Where the batches that broke a connection are written, to be replayed."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault(self, what: str, batch: bytes = b"") -> None:
        with self.lock:
            self.fault_count += 1
            if len(self.faults) < SHOWN:
                self.faults.append(what)
            if batch and self.evidence is not None:
                self.evidence.mkdir(parents=True, exist_ok=True)
                (self.evidence / f"fault-{self.fault_count}.kcp").write_bytes(batch)


class Session:
    """One client's stream of batches, reconnecting after each over-long line."""

    def __init__(self, port: int, maker: LineMaker, findings: Findings) -> None:
        self._port, self._maker, self._findings = port, maker, findings

    def run(self, lines: int) -> None:
        sent = 0
        while sent < lines:
            with socket.create_connection(("127.0.0.1", self._port), timeout=REPLY_TIMEOUT) as sock:
                sent += self._connection(sock, lines - sent)
            with self._findings.lock:
                self._findings.reconnects += 1

    def _connection(self, sock: socket.socket, lines: int) -> int:
        mine, replies = kcp.Parser(MAX_LINE_BYTES), kcp.Parser(1 << 30)
        sent = 0
        while sent < lines:
            batch = self._maker.batch(min(BATCH, lines - sent))
            sent += batch.data.count(b"\n")
            mine.feed(batch.data)
            expected, fatal = self._requests(mine, batch)
            sock.sendall(batch.data)
            if not self._read(sock, replies, expected, batch) or fatal:
                self._read_until_closed(sock, replies)
                return sent
        sock.shutdown(socket.SHUT_WR)  # the server answers what it read, then closes
        unfinished = mine.finish()
        if unfinished is not None and self._read(
            sock, replies, deque([unfinished.request_id or ""]), Batch(b"")
        ):
            self._read_until_closed(sock, replies)
        return sent

    def _requests(self, parser: kcp.Parser, batch: Batch) -> tuple[deque[str], bool]:
        """The ids of the requests the server reads in what was sent so far, in order."""
        expected: deque[str] = deque()
        while (parsed := parser.next()) is not None:
            items = parsed.messages() if isinstance(parsed, kcp.SetLines) else [parsed]
            for item in items:
                expected.append(item.request_id or "")
                if isinstance(item, kcp.Message) and item.request_id not in batch.kept:
                    self._taint(item.arguments)
                if isinstance(item, kcp.Malformed) and item.fatal:
                    return expected, True
        return expected, False

    def _taint(self, arguments: list[str]) -> None:
        touched = {word for word in arguments if KEEP in word}
        if touched:
            with self._findings.lock:
                self._findings.tainted |= touched

    def _read(
        self, sock: socket.socket, parser: kcp.Parser, expected: deque[str], batch: Batch
    ) -> bool:
        """Read the replies to ``expected``; False when the server closed the connection."""
        while expected:
            reply = parser.next()
            if reply is None:
                data = sock.recv(1 << 16)
                if not data:
                    owed = f"{len(expected)} replies, from {expected[0]!r}"
                    self._findings.fault(f"connection closed owing {owed}", batch.data)
                    return False
                parser.feed(data)
                continue
            for line in reply.messages() if isinstance(reply, kcp.SetLines) else [reply]:
                self._check(line, expected, batch)
        return True

    def _check(self, line: kcp.Parsed, expected: deque[str], batch: Batch) -> None:
        if not isinstance(line, kcp.Message) or not expected:
            self._findings.fault(f"unexpected reply {line!r:.200}")
            return
        if line.request_id != expected[0]:
            self._findings.fault(f"reply to {line.request_id!r} while {expected[0]!r} is owed")
        words = line.arguments
        if words[0] not in ("OK", "ERROR"):
            return  # an item line (LIST, RUNS, RULE LIST): the final OK follows
        expected.popleft()
        with self._findings.lock:
            self._findings.replies += 1
        if words[0] == "ERROR" and (len(words) != 3 or words[1] in ("internal", "unavailable")):
            self._findings.fault(f"{line.request_id!r}: {' '.join(words):.300}")
        if words == ["OK"] and line.request_id in batch.kept:
            job_id, due = batch.kept[line.request_id]
            with self._findings.lock:
                self._findings.acknowledged[job_id] = due

    def _read_until_closed(self, sock: socket.socket, parser: kcp.Parser) -> None:
        try:
            while data := sock.recv(1 << 16):
                parser.feed(data)
        except TimeoutError:
            self._findings.fault(f"not closed {REPLY_TIMEOUT} s after its last reply")
        while (reply := parser.next()) is not None:
            self._findings.fault(f"reply after the connection's last request: {reply!r:.200}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def watch_memory(pids: dict[str, int], findings: Findings, done: threading.Event) -> None:
    """Sample every child's memory at once, every quarter second, and once more at the end:
    however short the run, each child is measured."""
    _sample_memory(pids, findings)
    while not done.wait(0.25):
        _sample_memory(pids, findings)
    _sample_memory(pids, findings)


def _sample_memory(pids: dict[str, int], findings: Findings) -> None:
    for name, pid in pids.items():
        try:
            mib = rss_mib(pid)
        except FileNotFoundError:
            continue  # gone: the pid check at the end says so
        with findings.lock:
            findings.max_rss_mib[name] = max(findings.max_rss_mib.get(name, 0.0), mib)


def child_pids(server: ServerProcess) -> dict[str, list[int]]:
    """Every pid each child had under the supervisor (one each: none was restarted)."""
    started: dict[str, list[int]] = {}
    for event in server.events("process.started"):
        started.setdefault(event["name"], []).append(int(event["pid"]))
    return started


def check_jobs(port: int, acknowledged: dict[str, str], findings: Findings) -> int:
    """GET every acknowledged job (pipelined); how many were checked."""
    jobs = sorted(acknowledged)
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(b"".join(b"g%d GET %s\n" % (i, job.encode()) for i, job in enumerate(jobs)))
        sock.shutdown(socket.SHUT_WR)
        parser, data = kcp.Parser(1 << 30), bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
    parser.feed(bytes(data))
    replies: list[kcp.Message | kcp.Malformed] = []
    while (reply := parser.next()) is not None:
        replies.extend(reply.messages() if isinstance(reply, kcp.SetLines) else [reply])
    for i, job in enumerate(jobs):
        reply = replies[i] if i < len(replies) else None
        due = acknowledged[job]
        if not isinstance(reply, kcp.Message) or reply.arguments[:3] != ["OK", "planned", due]:
            findings.fault(f"acknowledged {job} (planned {due}) reads back as {reply!r:.200}")
    return len(jobs)


def run(
    lines: int,
    connections: int = 4,
    seed: int = 1,
    workdir: Path | None = None,
    evidence: Path | None = None,
) -> Report:
    """Fuzz a fresh server with ``lines`` lines; the findings, as a JSON-ready report (the
    batches that broke a connection are written to ``evidence``)."""
    with tempfile.TemporaryDirectory(prefix="kairoi-fuzz-") as scratch:
        root = workdir or Path(scratch)
        (root / "scripts").mkdir(parents=True, exist_ok=True)
        (root / "scripts" / "example.sh").write_text('#!/bin/sh\necho "job $1"\n')
        settings: Settings = {
            "controller": {"max_line_bytes": MAX_LINE_BYTES},
            "log": {"level": "info"},
        }
        server = ServerProcess(root, settings).start()
        try:
            findings = Findings(evidence=evidence)
            port = server.wait_ready()
            return _fuzz(server, port, findings, lines=lines, connections=connections, seed=seed)
        finally:
            server.stop()


def _fuzz(
    server: ServerProcess, port: int, findings: Findings, *, lines: int, connections: int, seed: int
) -> Report:
    before = child_pids(server)
    pids = {name: before[name][-1] for name in CHILDREN}
    done = threading.Event()
    watcher = threading.Thread(target=watch_memory, args=(pids, findings, done), daemon=True)
    watcher.start()
    started = time.monotonic()
    sessions = [
        threading.Thread(
            target=_session,
            args=(Session(port, LineMaker(seed, c, MAX_LINE_BYTES), findings), share, findings),
        )
        for c, share in enumerate(_shares(lines, connections))
    ]
    for thread in sessions:
        thread.start()
    for thread in sessions:
        thread.join()
    seconds = time.monotonic() - started
    done.set()
    watcher.join()
    after = child_pids(server)
    if after != before:
        findings.fault(f"children restarted: pids before {before}, after {after}")
    for name, mib in findings.max_rss_mib.items():
        if mib > MAX_RSS_MIB:
            findings.fault(f"{name} reached {mib:.0f} MiB (bound {MAX_RSS_MIB} MiB)")
    kept = {j: due for j, due in findings.acknowledged.items() if j not in findings.tainted}
    checked = check_jobs(port, kept, findings)
    return {
        "lines": lines, "connections": connections, "seed": seed, "seconds": round(seconds, 1),
        "lines_per_second": round(lines / seconds), "replies": findings.replies,
        "reconnects": findings.reconnects, "jobs_checked": checked,
        "max_rss_mib": {n: round(m, 1) for n, m in sorted(findings.max_rss_mib.items())},
        "fault_count": findings.fault_count, "faults": findings.faults,
        "evidence": str(findings.evidence) if findings.fault_count else None,
    }  # fmt: skip


def _session(session: Session, lines: int, findings: Findings) -> None:
    try:
        session.run(lines)
    except Exception as exc:  # a broken connection is a finding; the others go on
        findings.fault(f"session failed: {exc!r}")


def _shares(lines: int, connections: int) -> list[int]:
    return [lines // connections + (c < lines % connections) for c in range(connections)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.sockets", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    evidence = Path(__file__).resolve().parent.parent / "var" / "fuzz" / "sockets"
    report = run(options.lines, options.connections, options.seed, evidence=evidence)
    print(json.dumps(report, indent=2))
    return 1 if report["fault_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
