"""The RocksDB adapter (rocksdict in raw mode: bytes in, bytes out, never pickle).

A failed write (a full disk, an I/O error) puts RocksDB in a read-only error state that lasts
until the database is opened again, even once space is back: ``reopen`` does so (while it
cannot, every call raises StoreError). The messages name no path: a client may see them."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from typing import Any, cast

from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from kairoi.errors import StoreError
from kairoi.runtime import private_directory

MEMTABLE_BYTES = 16 << 20
BLOCK_CACHE_BYTES = 8 << 20
REOPEN_FREE_BYTES = 4 << 20
"""The space a database is opened anew with, at least, after a failed write."""
FLUSH_WHEN_IDLE_ENTRIES = 10_000
"""An idle storage writes its memtable out once it holds this many entries (about 1 MiB):
the memory it took is freed, and a restart has less of the write-ahead log to replay."""


def _bound_memory(options: Options) -> None:
    """Keep storage's memory flat however many jobs it holds.

    - At most two 16 MiB memtables being filled or flushed (RocksDB's default is 64 MiB each).
    - One 8 MiB block cache (RocksDB's default is 32 MiB, filled as the data grows) that also
      holds the index blocks, which otherwise stay in memory beside it, one per table file,
      growing with the data.
    - Partitioned indexes: a table file's index is cut into small blocks that the cache takes
      and drops one by one; only its top level stays pinned. (With whole index blocks in a
      small cache, a table file's large index block was evicted and read again from disk at
      every lookup once the store held a few million jobs.)
    """
    options.set_write_buffer_size(MEMTABLE_BYTES)
    options.set_max_write_buffer_number(2)
    options.set_memtable_prefix_bloom_ratio(0.1)
    options.set_memtable_whole_key_filtering(True)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    table.set_index_type(BlockBasedIndexType.two_level_index_search())
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_top_level_index_and_filter(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)


class RocksStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: Rdict | None = None
        self._db = self._open()
        self._sync = WriteOptions()
        self._sync.sync = True
        self._no_sync = WriteOptions()

    def _open(self) -> Rdict:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_keep_log_file_num(4)
        _bound_memory(options)
        try:
            private_directory(self.path)  # RocksDB creates its files as the umask says
            return Rdict(self.path, options)
        except Exception as exc:  # rocksdict raises bare Exception for lock and I/O errors
            raise StoreError(f"cannot open the database at {self.path}: {exc}") from exc

    def reopen(self) -> bool:
        """Close and open the database again: the way out of RocksDB's error state. False,
        and it stays open as it is, while less than ``REOPEN_FREE_BYTES`` are free (opening
        writes the log it replays out to a table file); StoreError when it cannot be opened
        (then it is closed until a later ``reopen``)."""
        if self._db is not None:
            if self.free_bytes() < REOPEN_FREE_BYTES:
                return False
            # It is closed all the same; its error is what made us reopen.
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
            gc.collect()  # the old handle's lock goes with it
        self._db = self._open()
        return True

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise StoreError("the database is closed: it could not be opened again")
        return self._db

    def free_bytes(self) -> int:
        """Space left for the database on its disk."""
        try:
            stats = os.statvfs(self.path)
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values = self.db.get(cast(list[Any], keys))  # one multi-get
        return cast(list[bytes | None], values)

    def write(self, batch: Mapping[bytes, bytes | None], sync: bool) -> None:
        rocks_batch = WriteBatch(raw_mode=True)
        put, delete = rocks_batch.put, rocks_batch.delete
        for key, value in batch.items():
            if value is None:
                delete(key)
            else:
                put(key, value)
        try:
            self.db.write(rocks_batch, self._sync if sync else self._no_sync)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot write to the database: {_without(self.path, exc)}") from exc

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        # The bound makes RocksDB itself stop at ``end``: without it, a seek into a range
        # with no live key steps over every deleted key after it (the tombstones of claimed
        # due entries and ended leases, until compaction) to reach the next live one.
        bounds = ReadOptions()  # bounds given as bytes are used as they are
        bounds.set_iterate_upper_bound(end)
        iterator = self.db.iter(bounds)
        iterator.seek(start)
        while iterator.valid():
            key: bytes = iterator.key()
            if key >= end:
                return
            yield key, iterator.value()
            iterator.next()

    def release_memory(self) -> None:
        held = self.db.property_int_value("rocksdb.num-entries-active-mem-table") or 0
        if held >= FLUSH_WHEN_IDLE_ENTRIES:
            try:
                self.db.flush(wait=True)
            except Exception as exc:
                raise StoreError(f"cannot flush the database: {_without(self.path, exc)}") from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _without(path: str, exc: Exception) -> str:
    """RocksDB's message, the database's path in it made ``<database>``."""
    return str(exc).replace(path, "<database>")
