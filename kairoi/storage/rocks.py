"""The RocksDB adapter (rocksdict in raw mode: bytes in, bytes out, never pickle)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, cast

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from kairoi.errors import StoreError

MEMTABLE_BYTES = 16 << 20


def _bound_memory(options: Options) -> None:
    """Keep storage's memory from growing with its write rate: at most two 16 MiB memtables
    being filled or flushed (RocksDB's default is 64 MiB each). Index blocks stay outside the
    block cache: putting them in a small cache made every SET of a new job read them again
    from disk once the store held a few million jobs, and storage fell behind."""
    options.set_write_buffer_size(MEMTABLE_BYTES)
    options.set_max_write_buffer_number(2)


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

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values = self._db.get(cast(list[Any], keys))  # one multi-get
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
