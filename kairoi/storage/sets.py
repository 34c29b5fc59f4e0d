"""SET's requests as storage takes them: a run of plain SETs planned at once (those of
quarantined jobs refused, the others planned), and the spec a definition asks for."""

from __future__ import annotations

from collections.abc import Sequence

from kairoi import messages
from kairoi.domain import JobSpec, Missed, Overlap
from kairoi.errors import InvalidRequest, KairoiError
from kairoi.storage import quarantine
from kairoi.storage.jobs import JobTable


def plan(
    jobs: JobTable, held: quarantine.Quarantine, job_ids: Sequence[str], due_us: Sequence[int]
) -> tuple[dict[int, KairoiError], int | None]:
    """``JobTable.plan`` of a SetJobs, but for the jobs that are quarantined: refused (with
    the others'), by position in order; and the earliest due time planned."""
    quarantined = held.held_among(job_ids)
    if not quarantined:  # the commonest batch
        return jobs.plan(job_ids, due_us)
    skipped = set(quarantined)
    others = [position for position in range(len(job_ids)) if position not in skipped]
    refused_others, earliest = jobs.plan([job_ids[p] for p in others], [due_us[p] for p in others])
    refused: dict[int, KairoiError] = {
        p: quarantine.refusal(job_ids[p], held.reason(job_ids[p]) or "") for p in quarantined
    }
    refused.update((others[p], error) for p, error in refused_others.items())
    return dict(sorted(refused.items())), earliest


def spec_of(request: messages.DefineJob) -> JobSpec:
    """The spec a DefineJob asks for; InvalidRequest when a word in it is not one."""
    try:
        missed, overlap = Missed(request.missed), Overlap(request.overlap)
    except ValueError as exc:
        raise InvalidRequest(f"{exc}: MISSED is skip, once or all; OVERLAP skip, queue or "
                             "allow") from None  # fmt: skip
    if request.retries < 0 or request.backoff_us < 0 or request.max_backoff_us < 0:
        raise InvalidRequest("RETRIES, BACKOFF and MAXBACKOFF must not be negative")
    return JobSpec(
        when=request.when, zone=request.zone or None, missed=missed, overlap=overlap,
        retries=request.retries, backoff_us=request.backoff_us,
        max_backoff_us=request.max_backoff_us, parents=tuple(dict.fromkeys(request.parents)),
        all_parents=request.all_parents, runner=request.runner, arguments=request.arguments,
        rule_id=request.rule_id, source=request.source,
    )  # fmt: skip
