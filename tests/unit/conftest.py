from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kairoi.storage.kv import KeyValueStore, MemoryStore
from kairoi.storage.rocks import RocksStore


@pytest.fixture(params=["memory", "rocksdb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    """Every KeyValueStore: the storage contract runs against each."""
    store: KeyValueStore = (
        MemoryStore() if request.param == "memory" else RocksStore(str(tmp_path / "db"))
    )
    yield store
    store.close()
