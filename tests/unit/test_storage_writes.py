"""The batch read through (walks merge its changes into the committed keys, in order),
and the time-ordered indexes walked over it."""

from __future__ import annotations

import random

from kairoi.storage import keys
from kairoi.storage.indexes import TimedIndex
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.writes import EVERY, PendingWrites


def _committed(kv: KeyValueStore, *pairs: tuple[bytes, bytes]) -> PendingWrites:
    writes = PendingWrites(kv)
    for key, value in pairs:
        writes.put(key, value)
    kv.write(writes.take(), sync=False)
    return writes


def test_a_walk_merges_the_batch_into_the_store_in_key_order(kv: KeyValueStore) -> None:
    writes = _committed(kv, (b"c1", b"old"), (b"c3", b"3"), (b"c5", b"5"))
    writes.put(b"c2", b"2")
    writes.put(b"c1", b"new")
    writes.delete(b"c5")
    writes.put(b"b9", b"outside")
    writes.put(b"d0", b"outside")

    assert writes.scan(b"c", b"d", 10) == [(b"c1", b"new"), (b"c2", b"2"), (b"c3", b"3")]
    assert writes.scan(b"c", b"d", 2) == [(b"c1", b"new"), (b"c2", b"2")]


def test_a_key_put_then_deleted_in_the_batch_is_not_walked(kv: KeyValueStore) -> None:
    writes = _committed(kv, (b"c1", b"1"))
    writes.put(b"c2", b"2")
    writes.delete(b"c2")
    writes.delete(b"c1")
    writes.put(b"c1", b"again")

    assert writes.scan(b"c", b"d", 10) == [(b"c1", b"again")]


def test_a_walk_across_kinds_sees_the_batch_of_each(kv: KeyValueStore) -> None:
    writes = _committed(kv, (b"a1", b"1"))
    writes.put_all(b"b", [b"b1", b"b2"], [b"x", b"y"])
    writes.put(b"c1", b"z")

    assert writes.scan(b"", b"\xff", 10) == [
        (b"a1", b"1"),
        (b"b1", b"x"),
        (b"b2", b"y"),
        (b"c1", b"z"),
    ]
    assert writes.scan(b"b", b"c", 10) == [(b"b1", b"x"), (b"b2", b"y")]


def test_a_walk_of_a_range_emptied_by_deletions_finds_nothing(kv: KeyValueStore) -> None:
    many = [(b"d%05d" % n, b"") for n in range(2_000)]
    writes = _committed(kv, *many, (b"f1", b"live"))
    for key, _ in many:
        writes.delete(key)
    kv.write(writes.take(), sync=False)

    assert writes.scan(b"c", b"d", 10) == []
    assert writes.scan(b"d", b"e", 10) == []
    assert writes.scan(b"c", b"\xff", 10) == [(b"f1", b"live")]


def test_the_batch_taken_leaves_nothing_to_walk(kv: KeyValueStore) -> None:
    writes = PendingWrites(kv)
    writes.put(b"c1", b"1")
    writes.take()

    assert writes.scan(b"c", b"d", 10) == []


def _due_index(kv: KeyValueStore) -> tuple[PendingWrites, TimedIndex[str]]:
    writes = PendingWrites(kv)
    return writes, TimedIndex(writes, keys.DUE, keys.parse_timed)


def test_an_index_walk_takes_what_is_due_and_tells_the_next_instant(kv: KeyValueStore) -> None:
    writes, due = _due_index(kv)
    for instant, job_id in ((30, "c"), (10, "a"), (20, "b")):
        writes.put(keys.timed(keys.DUE, instant, job_id), b"")
        due.added(instant)

    assert due.due_by(20, limit=1) == (["a"], 20)
    writes.delete(keys.timed(keys.DUE, 10, "a"))  # the caller moves what it takes
    assert due.due_by(20, limit=10) == (["b"], 30)


def test_an_index_is_not_walked_before_its_floor(kv: KeyValueStore) -> None:
    writes, due = _due_index(kv)
    writes.put(keys.timed(keys.DUE, 10, "a"), b"")
    writes.put(keys.timed(keys.DUE, 50, "b"), b"")
    kv.write(writes.take(), sync=False)
    assert due.due_by(5, limit=10) == ([], 10)

    writes.delete(keys.timed(keys.DUE, 10, "a"))  # the floor is left low
    assert due.due_by(5, limit=10) == ([], 10)  # an early answer, never a late one
    assert due.due_by(20, limit=10) == ([], 50)  # the walk corrects it
    assert due.due_by(20, limit=10) == ([], 50)


def test_an_emptied_index_is_walked_again_once_an_entry_is_added(kv: KeyValueStore) -> None:
    writes, due = _due_index(kv)
    assert due.due_by(100, limit=10) == ([], None)

    writes.put(keys.timed(keys.DUE, 40, "a"), b"")
    due.added(40)
    assert due.due_by(30, limit=10) == ([], 40)
    assert due.due_by(40, limit=10) == (["a"], None)


def test_walks_between_many_changes_see_the_batch_as_it_is(kv: KeyValueStore) -> None:
    """The batch's ordered index (a sorted part and a recent part merged as it grows) gives
    every walk what a plain merge of the batch would, through repeats, deletes and undo."""
    rng = random.Random(13)
    writes = _committed(kv, *((b"c%04d" % n, b"old") for n in range(0, 400, 3)))
    expected = {b"c%04d" % n: b"old" for n in range(0, 400, 3)}
    for step in range(3_000):
        key = b"c%04d" % rng.randrange(400)
        if rng.random() < 0.3:
            writes.delete(key)
            expected.pop(key, None)
        elif step % 500 == 499:
            before = dict(expected)
            mark = writes.mark(outermost=True)
            writes.put_all(b"c", [b"c9%03d" % step], [b"gone"])
            writes.undo(mark)
            assert expected == before
        else:
            writes.put(key, b"%d" % step)
            expected[key] = b"%d" % step
        low = b"c%04d" % rng.randrange(400)
        high = low[:-1] + b"\xff"
        assert writes.scan(low, high, EVERY) == sorted(
            (k, v) for k, v in expected.items() if low <= k < high
        ), step
    assert writes.under(b"c") == sorted(expected.items())
