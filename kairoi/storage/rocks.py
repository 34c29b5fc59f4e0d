"""The RocksDB adapter (rocksdict in raw mode: bytes in, bytes out, never pickle)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from kairoi.errors import StoreError

MEMTABLE_BYTES = 16 << 20
BLOCK_CACHE_BYTES = 16 << 20


def _bound_memory(options: Options) -> None:
    """Keep storage's memory flat however many jobs it holds: at most two memtables being
    filled or flushed, and one block cache that also holds the index and filter blocks
    (by default those live outside any cache and grow with the data)."""
    options.set_write_buffer_size(MEMTABLE_BYTES)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)


class RocksStore:
    def __init__(self, path: str) -> None:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_keep_log_file_num(4)
        _bound_memory(options)
        try:
            os.makedirs(path, exist_ok=True)
            self._db = Rdict(path, options)
        except Exception as exc:  # rocksdict raises bare Exception for lock and I/O errors
            raise StoreError(f"cannot open the database at {path}: {exc}") from exc
        self.path = path
        self._sync = WriteOptions()
        self._sync.sync = True
        self._no_sync = WriteOptions()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def write(self, batch: Mapping[bytes, bytes | None], sync: bool) -> None:
        rocks_batch = WriteBatch(raw_mode=True)
        for key, value in batch.items():
            if value is None:
                rocks_batch.delete(key)
            else:
                rocks_batch.put(key, value)
        try:
            self._db.write(rocks_batch, self._sync if sync else self._no_sync)
        except Exception as exc:
            raise StoreError(f"cannot write to the database at {self.path}: {exc}") from exc

    def scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        iterator = self._db.iter()
        iterator.seek(start)
        while iterator.valid():
            key: bytes = iterator.key()
            if key >= end:
                return
            yield key, iterator.value()
            iterator.next()

    def close(self) -> None:
        self._db.close()
