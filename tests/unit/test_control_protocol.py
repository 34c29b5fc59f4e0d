"""The control bus's requests are read strictly (attack report, minor findings): a map that
names a key twice is refused rather than the last one winning, and ``cascade`` is taken by
``delete`` only."""

from __future__ import annotations

import re

import msgpack
import pytest

from kairoi import messages
from kairoi.control.protocol import ControlError, decode_request

# {"op": "get", "op": "delete", "job": "keep"}: msgpack's packers never write it, a client can.
DUPLICATE_OP = b"\x83\xa2op\xa3get\xa2op\xa6delete\xa3job\xa4keep"
DUPLICATE_IN_ID = b"\x83\xa2op\xa3get\xa3job\xa4keep\xa2id\x82\xa1a\x01\xa1a\x02"


@pytest.mark.parametrize(("body", "keys"), [(DUPLICATE_OP, "['op']"), (DUPLICATE_IN_ID, "['a']")])
def test_a_map_that_names_a_key_twice_is_refused(body: bytes, keys: str) -> None:
    with pytest.raises(ControlError, match=re.escape(f"a map names {keys} more than once")):
        decode_request(body)


def test_many_duplicate_keys_are_refused_quickly() -> None:
    body = b"\xdf" + (200_000).to_bytes(4, "big") + b"\xa1k\x01" * 200_000
    with pytest.raises(ControlError, match=r"a map names \['k'\] more than once"):
        decode_request(body)


def test_cascade_is_taken_by_delete_only() -> None:
    delete = msgpack.packb({"op": "delete", "job": "j", "cascade": True, "id": {"a": 1}})
    assert decode_request(delete) == ({"a": 1}, messages.UnsetJob(job_id="j", cascade=True))
    with pytest.raises(ControlError, match="cascade applies to delete only, not to get"):
        decode_request(msgpack.packb({"op": "get", "job": "j", "cascade": False}))
