"""What storage does with requests: pure logic over a KeyValueStore, no sockets.

Requests are applied to one pending batch (later requests in it see earlier ones); ``commit``
writes the batch at once. Only after it returns may the replies go out: OK means durable.
"""

from __future__ import annotations

from typing import Final, assert_never

from kairoi import messages
from kairoi.domain import AmqpRunner, Job, JobStatus, Rule, ShellRunner, match_rule
from kairoi.errors import Conflict, InvalidRequest, KairoiError, StoreError
from kairoi.storage import codec, keys
from kairoi.storage.kv import KeyValueStore

OK: Final = messages.Ok()


class Engine:
    def __init__(self, kv: KeyValueStore, fsync: bool) -> None:
        self._kv = kv
        self._fsync = fsync
        self._batch: dict[bytes, bytes | None] = {}
        self._rule_changes: dict[str, Rule] = {}
        self._check_schema()
        self.rules = {
            key[len(keys.RULE) :].decode(): codec.decode_rule(key[len(keys.RULE) :].decode(), value)
            for key, value in kv.scan(keys.RULE, keys.prefix_end(keys.RULE))
        }

    def apply(self, request: messages.Message) -> messages.Reply:
        """Apply ``request`` to the pending batch; its reply holds until ``commit``."""
        try:
            match request:
                case messages.SetJob(job_id=job_id, due_us=due_us):
                    self._set_job(job_id, due_us)
                case messages.SetShellRule(rule_id=rule_id, pattern=pattern, script=script):
                    self._set_rule(
                        Rule(id=rule_id, pattern=pattern, runner=ShellRunner(script=script))
                    )
                case messages.SetAmqpRule():
                    runner = AmqpRunner(
                        dsn=request.dsn, exchange=request.exchange, routing_key=request.routing_key
                    )
                    self._set_rule(Rule(id=request.rule_id, pattern=request.pattern, runner=runner))
                case messages.Ok() | messages.Failed():
                    raise InvalidRequest(f"storage does not take {type(request).__name__}")
                case _:
                    assert_never(request)
        except KairoiError as exc:
            return messages.Failed(code=exc.code, reason=exc.reason)
        return OK

    def commit(self) -> None:
        """Write the pending batch durably; on StoreError nothing of it is kept."""
        batch, rule_changes = self._batch, self._rule_changes
        self._batch, self._rule_changes = {}, {}
        if batch:
            self._kv.write(batch, sync=self._fsync)
        self.rules.update(rule_changes)

    def job(self, job_id: str) -> Job | None:
        key = keys.job(job_id)
        data = self._batch[key] if key in self._batch else self._kv.get(key)
        return None if data is None else codec.decode_job(job_id, data)

    def rule_for(self, job_id: str) -> Rule | None:
        return match_rule(self.rules.values(), job_id)

    def _set_job(self, job_id: str, due_us: int) -> None:
        current = self.job(job_id)
        if current is not None and current.status is JobStatus.TRIGGERED:
            raise Conflict(f"job {job_id!r} is running (Triggered); set it again once its run ends")
        if current is not None and current.status is JobStatus.PLANNED:
            self._batch[keys.due(current.due_us, job_id)] = None
        run = current.run if current is not None else 0
        job = Job(id=job_id, due_us=due_us, status=JobStatus.PLANNED, run=run)
        self._batch[keys.job(job_id)] = codec.encode_job(job)
        self._batch[keys.due(due_us, job_id)] = b""

    def _set_rule(self, rule: Rule) -> None:
        self._batch[keys.rule(rule.id)] = codec.encode_rule(rule)
        self._rule_changes[rule.id] = rule

    def _check_schema(self) -> None:
        schema = self._kv.get(keys.SCHEMA_VERSION)
        if schema is None:
            self._kv.write({keys.SCHEMA_VERSION: keys.SCHEMA}, sync=True)
        elif schema != keys.SCHEMA:
            raise StoreError(
                f"the database has schema {schema!r}; this Kairoi reads {keys.SCHEMA!r}"
            )
