"""Opening a database written by an earlier Kairoi: its schema is brought to this one's, in
one synced write, before anything else reads it."""

from __future__ import annotations

from typing import Any

import msgpack

from kairoi.domain import ActiveRun
from kairoi.errors import StoreError
from kairoi.storage import codec, keys
from kairoi.storage.kv import KeyValueStore


def upgrade(kv: KeyValueStore) -> None:
    """Write the schema of a new database; upgrade an older one; refuse a newer one."""
    schema = kv.get(keys.SCHEMA_VERSION)
    if schema == keys.SCHEMA:
        return
    if schema is None:
        kv.write({keys.SCHEMA_VERSION: keys.SCHEMA}, sync=True)
    elif schema == b"1":
        kv.write({**_leases_out_of_jobs(kv), keys.SCHEMA_VERSION: keys.SCHEMA}, sync=True)
    else:
        raise StoreError(f"the database has schema {schema!r}; this Kairoi reads {keys.SCHEMA!r}")


def _leases_out_of_jobs(kv: KeyValueStore) -> dict[bytes, bytes | None]:
    """Schema 1 kept a running job's lease in the job's record, with lease-index entries
    ``t<lease:8><job id>``: each becomes a run record of its own (``a…``) with its entry
    ``t<lease:8><id size:2><job id><run:8>``."""
    batch: dict[bytes, bytes | None] = {}
    for key, _ in list(kv.scan(keys.LEASE, keys.prefix_end(keys.LEASE))):
        lease_until_us, job_id = keys.parse_timed(key)
        data = kv.get(keys.job(job_id))
        batch[key] = None
        if data is None:
            continue
        record: dict[str, Any] = msgpack.unpackb(data, raw=False)
        run = ActiveRun(
            job_id=job_id, run=record.get("n", 0), due_us=record["d"], slot_us=None,
            manual=record.get("m", False), attempt=0, after="", lease_until_us=lease_until_us,
            owner=record.pop("o", ""),
        )  # fmt: skip
        record.pop("l", None)
        record["a"] = [run.run]
        batch[keys.job(job_id)] = msgpack.packb(record)
        batch[keys.run_of(keys.ACTIVE, job_id, run.run)] = codec.encode_active(run)
        batch[keys.lease(run.lease_until_us, job_id, run.run)] = b""
    return batch
