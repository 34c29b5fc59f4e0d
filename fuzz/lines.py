"""The lines the socket fuzzer sends: valid ones of every instruction, mutations of them,
random bytes and over-long lines, from one seeded random generator per connection.

Jobs whose SET is meant to be checked at the end live under ``keep.``; every other line names
``fz.`` jobs and rules. A line that mentions a ``keep.`` id without being one of those SETs
(a mutation can make one) is reported, so the check leaves that job out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KEEP = "keep."
WHENS = (
    '"2030-01-01 00:00:00"', "2030-06-01T12:00:00Z", "2030-06-01T14:00:00+02:00",
    "R/2030-01-01T00:00:00Z/PT10S", "R3/2030-01-01T00:00:00Z/P1M", '"cron:0 0 3 * * *"',
    '"cron:*/5 * * * *" TZ Europe/Paris', "2030-01-01T00:00:00Z RETRIES 2 BACKOFF PT30S",
    "2030-01-01T00:00:00Z MISSED once OVERLAP skip", "AFTER fz.a fz.b ANY",
)  # fmt: skip
TEMPLATES = (
    "SET fz.{n} {when}", "GET fz.{n}", "UNSET fz.{n}", "UNSET fz.{n} CASCADE", "DISABLE fz.{n}",
    "ENABLE fz.{n}", "STOP fz.{n}", "RUNS fz.{n} LIMIT 3", "OUTPUT fz.{n}", "LIST fz. LIMIT 5",
    "LIST fz.{n} AFTER fz.", "RULE SET fz.r{n} fz.nothing. shell scripts/example.sh",
    "RULE GET fz.r{n}", "RULE LIST fz.", "RULE UNSET fz.r{n}", "PING", "VERSION", "STATS",
)  # fmt: skip


@dataclass
class Batch:
    data: bytes
    kept: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Request id → (job id, the due time GET must show) of each checked SET in the batch."""
    over_long: bool = False


class LineMaker:
    def __init__(self, seed: int, connection: int, max_line_bytes: int) -> None:
        self._random = random.Random(f"{seed}/{connection}")
        self._connection = connection
        self._max_line_bytes = max_line_bytes
        self._count = 0

    def batch(self, size: int) -> Batch:
        """``size`` lines; now and then the last is over-long (the server then closes)."""
        batch = Batch(b"")
        lines = []
        for _ in range(size):
            self._count += 1
            lines.append(self._line(batch))
        if self._random.random() < 0.02:
            lines[-1] = b"%d SET fz.long %s\n" % (self._count, b"x" * self._max_line_bytes)
            batch.over_long = True
        batch.data = b"".join(lines)
        return batch

    def _line(self, batch: Batch) -> bytes:
        draw = self._random.random()
        if draw < 0.25:
            return self._kept_set(batch)
        if draw < 0.55:
            return self._valid()
        if draw < 0.9:
            line = self._mutated(self._valid())
        else:
            line = self._random.randbytes(self._random.randrange(1, 200)) + b"\n"
        return self._mostly_closed(line)

    def _mostly_closed(self, line: bytes) -> bytes:
        """``line`` with its open quoted string closed, but one time in ten: an open quote
        runs on over the next lines (one message), which would leave few lines of their own."""
        if line.count(b'"') % 2 and self._random.random() < 0.9:
            return line[:-1] + b'"\n'
        return line

    def _kept_set(self, batch: Batch) -> bytes:
        request_id = f"k{self._connection}.{self._count}"
        job_id = f"{KEEP}{self._connection}.{self._count}"
        second = self._count % 60
        batch.kept[request_id] = (job_id, f"2031-02-03T04:05:{second:02d}Z")
        return f'{request_id} SET {job_id} "2031-02-03 04:05:{second:02d}"\n'.encode()

    def _valid(self) -> bytes:
        template = self._random.choice(TEMPLATES)
        n = self._random.randrange(1000)
        line = template.format(n=n, when=self._random.choice(WHENS))
        return f"v{self._connection}.{self._count} {line}\n".encode()

    def _mutated(self, line: bytes) -> bytes:
        data = bytearray(line[:-1])
        for _ in range(self._random.randrange(1, 4)):
            position = self._random.randrange(len(data) + 1)
            match self._random.randrange(4):
                case 0 if data:
                    data[position % len(data)] ^= 1 << self._random.randrange(8)
                case 1:
                    data[position:position] = self._random.choice(_INSERTS)
                case 2:
                    del data[position : position + self._random.randrange(1, 8)]
                case _:
                    data[position:position] = str(self._random.getrandbits(70)).encode()
        return bytes(data) + b"\n"


_INSERTS = (b'"', b"\\", b"\r", b" ", b"\0", b"\xff", b"\xc3", b"-", b"+99:99", b"9999",
            b"0001-", b"T", b"Z", b"R", b"/", b"P", b"cron:", b"\xe2\x80\xa6", b"\n")  # fmt: skip
