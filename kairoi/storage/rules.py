"""The rules, kept in memory by storage (they are few) and on disk, changed in batches."""

from __future__ import annotations

from kairoi.domain import Rule, match_rule
from kairoi.errors import NotFound
from kairoi.storage import codec, keys
from kairoi.storage.kv import KeyValueStore
from kairoi.storage.writes import PendingWrites


class RuleBook:
    def __init__(self, kv: KeyValueStore, writes: PendingWrites) -> None:
        self._writes = writes
        self.committed = {
            rule_id: codec.decode_rule(rule_id, value)
            for rule_id, value in (
                (key[len(keys.RULE) :].decode(), value)
                for key, value in kv.scan(keys.RULE, keys.prefix_end(keys.RULE))
            )
        }
        self._changes: dict[str, Rule | None] = {}  # None: deleted in the pending batch

    def current(self) -> dict[str, Rule]:
        """The rules as the pending batch leaves them."""
        if not self._changes:
            return self.committed
        rules = {**self.committed, **self._changes}
        return {rule_id: rule for rule_id, rule in rules.items() if rule is not None}

    def set(self, rule: Rule) -> None:
        self._writes.put(keys.rule(rule.id), codec.encode_rule(rule))
        self._changes[rule.id] = rule

    def unset(self, rule_id: str) -> None:
        self.get(rule_id)
        self._writes.delete(keys.rule(rule_id))
        self._changes[rule_id] = None

    def find(self, rule_id: str) -> Rule | None:
        return self.current().get(rule_id)

    def get(self, rule_id: str) -> Rule:
        rule = self.current().get(rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id!r}")
        return rule

    def starting_with(self, prefix: str, after: str | None = None) -> list[Rule]:
        """The rules whose ids start with ``prefix``, in byte order of their ids, those after
        the id ``after`` (None: from the first)."""
        floor = None if after is None else after.encode()
        rules = [
            rule
            for rule in self.current().values()
            if rule.id.startswith(prefix) and (floor is None or rule.id.encode() > floor)
        ]
        return sorted(rules, key=lambda rule: rule.id.encode())

    def rule_for(self, job_id: str) -> Rule | None:
        return match_rule(self.current().values(), job_id)

    def committed_batch(self, written: bool) -> None:
        """The pending batch was written (its changes hold) or not (they are dropped)."""
        if written:
            for rule_id, rule in self._changes.items():
                if rule is None:
                    self.committed.pop(rule_id, None)
                else:
                    self.committed[rule_id] = rule
        self._changes = {}
