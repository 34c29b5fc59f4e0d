"""A job's relatives through AFTER: the jobs that run after it, directly or not, walked
breadth first over the children index, bounded; and what a refused cycle is said to be.

Every walk keeps a visited set (a cycle already stored, from before cycles were refused,
ends it like any other repeat) and stops past MAX_RELATIVES jobs: one request never walks
more, whatever the graph holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence

from kairoi.errors import InvalidRequest, TooManyRelatives

MAX_RELATIVES = 10_000
"""The most jobs one request walks through AFTER (an UNSET CASCADE deletes, a SET looks
through for a cycle)."""
_SHOWN_ID = 40
"""The most characters of an id a reason shows."""
_SHOWN_JOBS = 8
"""The most ids of a cycle a reason shows (the first and last ones)."""


def descendants(
    children: Callable[[str], Sequence[str]], root: str, stop: Collection[str] = ()
) -> dict[str, str]:
    """Every job that runs after ``root``, directly or not, each with the job it was reached
    from (it runs after that one), nearest first; the walk ends early at a job of ``stop``.
    TooManyRelatives past MAX_RELATIVES jobs."""
    reached_from: dict[str, str] = {}
    frontier = deque([root])
    while frontier:
        parent = frontier.popleft()
        for child in children(parent):
            if child == root or child in reached_from:
                continue
            reached_from[child] = parent
            if child in stop:
                return reached_from
            if len(reached_from) > MAX_RELATIVES:
                raise TooManyRelatives(
                    f"more than {MAX_RELATIVES:,} jobs run after {shown(root)}, directly or not"
                )
            frontier.append(child)
    return reached_from


def refuse_cycle(
    children: Callable[[str], Sequence[str]], job_id: str, new_parents: Collection[str]
) -> None:
    """InvalidRequest when ``job_id`` running after ``new_parents`` would make a cycle: one
    of them runs after ``job_id`` already, directly or not."""
    if not new_parents:
        return
    try:
        reached_from = descendants(children, job_id, stop=new_parents)
    except TooManyRelatives as exc:
        raise TooManyRelatives(f"{exc.reason}: a cycle through its new parents cannot be "
                               "ruled out; give it fewer relatives first") from None  # fmt: skip
    for parent in new_parents:
        if parent in reached_from:
            path = [job_id, parent]
            while path[-1] != job_id:
                path.append(reached_from[path[-1]])
            raise InvalidRequest(f"{shown(job_id)} running after {shown(parent)} would make a "
                                 f"cycle: {cycle_text(path)}")  # fmt: skip


def cycle_text(path: Sequence[str]) -> str:
    """``A → B → A``: each job runs after the next; a long cycle shown by its ends."""
    ids = [_cut(job_id) for job_id in path]
    if len(ids) > _SHOWN_JOBS:
        left_out = len(ids) - _SHOWN_JOBS + 1
        ids = [*ids[: _SHOWN_JOBS // 2], f"… ({left_out} more)", *ids[-(_SHOWN_JOBS // 2) + 1 :]]
    return " → ".join(ids)


def shown(job_id: str) -> str:
    """``job_id`` quoted, as a reason shows it (bounded)."""
    return repr(_cut(job_id))


def _cut(job_id: str) -> str:
    return job_id if len(job_id) <= _SHOWN_ID else job_id[: _SHOWN_ID - 1] + "…"


def cycle_among(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle among jobs of which each has a parent among them (the jobs of a file none of
    which could be defined first): each job of it runs after the next, the last is the first."""
    job_id = next(iter(parents))
    path = [job_id]
    seen = {job_id: 0}
    while True:
        job_id = next(parent for parent in parents[job_id] if parent in parents)
        if job_id in seen:
            return [*path[seen[job_id] :], job_id]
        seen[job_id] = len(path)
        path.append(job_id)
