"""What storage does with requests: pure logic over a KeyValueStore, no sockets.

Requests are applied to one pending batch (later requests in it see earlier ones); ``commit``
writes the batch at once. Only after it returns may the replies go out: OK means durable.
"""

from __future__ import annotations

from typing import Final, assert_never

from kairoi import messages
from kairoi.clock import Clock, SystemClock
from kairoi.domain import AmqpRunner, Job, Rule, ShellRunner, match_rule
from kairoi.errors import Conflict, InvalidRequest, KairoiError, StoreError
from kairoi.storage import codec, keys
from kairoi.storage.claims import Runs
from kairoi.storage.jobs import JobTable
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.writes import PendingWrites

OK: Final = messages.Ok()
DEFAULT_LEASE_US = 10_000_000


class Engine:
    def __init__(
        self,
        kv: KeyValueStore,
        fsync: bool,
        clock: Clock | None = None,
        lease_us: int = DEFAULT_LEASE_US,
    ) -> None:
        self._kv = kv
        self._fsync = fsync
        self._writes = PendingWrites(kv)
        self._jobs = JobTable(self._writes)
        self._rule_changes: dict[str, Rule] = {}
        self._announced: int | None = None  # the next due time the dispatcher was told
        self._earliest: int | None = None  # the earliest due time made in this batch
        self.runs = Runs(self._jobs, self.rule_for, clock or SystemClock(), lease_us, self._due_at)
        self._check_schema()
        self.rules = {
            key[len(keys.RULE) :].decode(): codec.decode_rule(key[len(keys.RULE) :].decode(), value)
            for key, value in kv.scan(keys.RULE, keys.prefix_end(keys.RULE))
        }

    def apply(self, request: messages.Message) -> messages.Reply:
        """Apply ``request`` to the pending batch; its reply holds until ``commit``."""
        try:
            return self._route(request)
        except KairoiError as exc:
            return messages.Failed(code=exc.code, reason=exc.reason)

    def _route(self, request: messages.Message) -> messages.Reply:
        match request:
            case messages.SetJob(job_id=job_id, due_us=due_us):
                if self._jobs.plan((job_id,), (due_us,)):
                    raise _running(job_id)
                self._due_at(due_us)
            case messages.SetJobs():
                return self._set_jobs(request)
            case messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=script):
                self._set_rule(Rule(id=rule_id, pattern=pattern, runner=ShellRunner(script=script)))
            case messages.SetAmqpRule():
                runner = AmqpRunner(
                    dsn=request.dsn, exchange=request.exchange, routing_key=request.routing_key
                )
                self._set_rule(Rule(id=request.rule_id, pattern=request.pattern, runner=runner))
            case messages.ClaimDue():
                claimed = self.runs.claim(request)
                self._announced = claimed.next_due_us
                return claimed
            case messages.RunnerStarted(name=name, instance=instance):
                self.runs.runner_started(name, instance)
            case messages.RenewLeases():
                self.runs.renew(request)
            case messages.RecordOutcome():
                self.runs.record(request)
            case (
                messages.Ok()
                | messages.Failed()
                | messages.Claimed()
                | messages.Refused()
                | messages.Execute()
                | messages.Wakeup()
                | messages.RunnerHello()
                | messages.SlotsFreed()
            ):
                raise InvalidRequest(f"storage does not take {type(request).__name__}")
            case _:
                assert_never(request)
        return OK

    def commit(self) -> None:
        """Write the pending batch durably; on StoreError nothing of it is kept."""
        batch, rule_changes = self._writes.take(), self._rule_changes
        self._rule_changes = {}
        if batch:
            try:
                self._kv.write(batch, sync=self._fsync)
            except StoreError:
                self._jobs.forget_floors()  # they assumed the batch written
                raise
        self.rules.update(rule_changes)

    def release_memory(self) -> None:
        """Between bursts: let the store give back the memory it holds for writes."""
        self._kv.release_memory()

    def take_wakeup(self) -> int | None:
        """After a commit: a due time earlier than the dispatcher knows of, to tell it."""
        earliest, self._earliest = self._earliest, None
        if earliest is None or (self._announced is not None and earliest >= self._announced):
            return None
        self._announced = earliest
        return earliest

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def rule_for(self, job_id: str) -> Rule | None:
        rules = {**self.rules, **self._rule_changes} if self._rule_changes else self.rules
        return match_rule(rules.values(), job_id)

    def _due_at(self, due_us: int) -> None:
        if self._earliest is None or due_us < self._earliest:
            self._earliest = due_us

    def _set_jobs(self, request: messages.SetJobs) -> messages.Reply:
        job_ids, due_us = request.job_ids, request.due_us
        if len(job_ids) != len(due_us):
            raise InvalidRequest("job_ids and due_us must have the same length")
        running = self._jobs.plan(job_ids, due_us)
        if not running:
            if due_us:
                self._due_at(min(due_us))
            return OK
        planned = set(range(len(job_ids))).difference(running)
        if planned:
            self._due_at(min(due_us[position] for position in planned))
        errors = [_running(job_ids[position]) for position in running]
        return messages.Refused(
            positions=tuple(running),
            codes=tuple(error.code for error in errors),
            reasons=tuple(error.reason for error in errors),
        )

    def _set_rule(self, rule: Rule) -> None:
        self._writes.put(keys.rule(rule.id), codec.encode_rule(rule))
        self._rule_changes[rule.id] = rule

    def _check_schema(self) -> None:
        schema = self._kv.get(keys.SCHEMA_VERSION)
        if schema is None:
            self._kv.write({keys.SCHEMA_VERSION: keys.SCHEMA}, sync=True)
        elif schema != keys.SCHEMA:
            raise StoreError(
                f"the database has schema {schema!r}; this Kairoi reads {keys.SCHEMA!r}"
            )


def _running(job_id: str) -> Conflict:
    return Conflict(f"job {job_id!r} is running (Triggered); set it again once its run ends")
