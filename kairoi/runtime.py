"""What every Kairoi process does the same way: its title, its signals, its parent, its
private directories.

Signal handlers only set a flag and write to a wake-up descriptor; the process loop reads the
flag. A process started by ``kairoi serve`` also asks the kernel to stop it if its supervisor
dies, so no process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

import setproctitle

from kairoi import log

_log = log.get("kairoi.runtime")
SUPERVISED_ENV = "KAIROI_SUPERVISED"
EXIT_CONFIG = 78
"""EX_CONFIG: a process exits with it on a configuration error, which restarting does not
mend, so ``kairoi serve`` stops everything instead of restarting it."""
PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_PR_SET_PDEATHSIG = 1


def run_async(main: Coroutine[Any, Any, None]) -> None:
    """Run an asyncio process on uvloop (a faster event loop written in C) where it exists,
    handing freed memory back to the system whenever it turns idle."""
    try:
        import uvloop  # noqa: PLC0415 (optional: not on every platform)
    except ImportError:
        asyncio.run(_releasing_memory_when_idle(main))
    else:
        uvloop.run(_releasing_memory_when_idle(main))


async def _releasing_memory_when_idle(main: Coroutine[Any, Any, None]) -> None:
    async def watch() -> None:
        idle = IdleWatch()
        while True:
            await asyncio.sleep(IDLE_SECONDS)
            if idle.turned_idle():
                release_free_memory()

    watcher = asyncio.create_task(watch())
    try:
        await main
    finally:
        watcher.cancel()


IDLE_SECONDS = 1.0
"""A process that used (almost) no CPU for this long after being busy is idle."""
BUSY_CPU_SECONDS = 0.01
"""CPU time within IDLE_SECONDS above which a process counts as busy."""


class IdleWatch:
    """Tells, when asked every IDLE_SECONDS, whether the process has just turned idle: it was
    busy since it last turned idle, and used (almost) no CPU since it was last asked."""

    def __init__(self, cpu_seconds: Callable[[], float] = time.process_time) -> None:
        self._cpu_seconds = cpu_seconds
        self._last = cpu_seconds()
        self._busy = False

    def turned_idle(self) -> bool:
        now = self._cpu_seconds()
        used, self._last = now - self._last, now
        if used > BUSY_CPU_SECONDS:
            self._busy = True
            return False
        turned, self._busy = self._busy, False
        return turned


def release_free_memory() -> None:
    """Give the memory freed since the last call back to the system. glibc's allocator keeps
    freed memory for reuse: after a burst of requests a process would stay at its peak size
    (tens of MiB) for the rest of its life."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc only
    except AttributeError:
        return None
    return trim


_malloc_trim = _find_malloc_trim()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for the running asyncio loop. SIGHUP is ignored
    (it asks for a reload, which only the frontend does)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _ignore)
    return stop


def _ignore() -> None:
    pass


def set_title(argv: list[str]) -> None:
    """Show this process in ``ps`` as ``kairoi <command> …``."""
    setproctitle.setproctitle(" ".join(["kairoi", *argv]))


def die_with_supervisor() -> None:
    """When started by ``kairoi serve``, receive SIGTERM if it dies (Linux only)."""
    supervisor = os.environ.pop(SUPERVISED_ENV, None)  # for this process, not its children
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != supervisor:  # it died while this process was still starting
        os.kill(os.getpid(), signal.SIGTERM)


class ShutdownFlag:
    """Set by SIGTERM or SIGINT; ``wakeup_fd`` becomes readable when it is."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self.hangup = False
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload is for the frontend only
        # The kernel may deliver the signal to any thread (RocksDB's and ZeroMQ's too), and
        # Python runs the handler above only once the main thread runs Python again: while
        # it waits in poll, only this byte, written by the C-level handler in whichever
        # thread took the signal, wakes it up.
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)

    def watch_children(self) -> None:
        """Also wake up (without requesting shutdown) when a child process exits."""
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: self._wake())

    def watch_hangup(self) -> None:
        """Also wake up on SIGHUP, setting ``hangup`` (for its owner to pass on, and clear)."""
        signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        self.hangup = True
        self._wake()

    @property
    def wakeup_fd(self) -> int:
        return self._reader.fileno()

    def wait(self, timeout: float | None) -> None:
        """Sleep until a signal arrives or ``timeout`` seconds pass; consume the wake-up."""
        readable, _, _ = select.select([self._reader], [], [], timeout)
        if readable:
            try:
                while self._reader.recv(4096):
                    pass
            except BlockingIOError:
                pass

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already readable; one byte is enough
            self._writer.send(b"\0")

    def close(self) -> None:
        previous = signal.set_wakeup_fd(-1)
        if previous != self._writer.fileno():  # not ours: put it back
            signal.set_wakeup_fd(previous)
        self._reader.close()
        self._writer.close()


def private_directory(path: str) -> None:
    """Make ``path`` a directory only this user can enter, whatever the umask: created with
    PRIVATE_DIRECTORY_MODE, or tightened to it when it is this user's and looser. One that
    belongs to someone else (``/tmp``) is refused with OSError: its owner could reach what
    Kairoi keeps there, and it is not Kairoi's to change."""
    os.makedirs(path, mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)
    status = os.stat(path)
    if status.st_uid != os.geteuid():
        raise PermissionError(
            f"{path} belongs to another user (uid {status.st_uid}): give Kairoi a directory "
            "of its own (runtime.dir, database.path)"
        )
    loose = stat.S_IMODE(status.st_mode) & ~PRIVATE_DIRECTORY_MODE
    if loose:
        os.chmod(path, PRIVATE_DIRECTORY_MODE)
        _log.info("runtime.directory_tightened", path=path,
                            was=oct(stat.S_IMODE(status.st_mode)))  # fmt: skip


def private_file(path: str) -> None:
    """Make the file at ``path`` (a socket just bound) readable and writable by this user
    only, whatever the umask it was created under."""
    os.chmod(path, PRIVATE_FILE_MODE)
