"""Rule pairing: longest prefix in bytes, ties broken deterministically."""

from __future__ import annotations

import itertools

from kairoi.domain import Rule, ShellRunner, match_rule


def rule(rule_id: str, pattern: str) -> Rule:
    return Rule(id=rule_id, pattern=pattern, runner=ShellRunner(script=f"{rule_id}.sh"))


RULES = [rule("a", "app."), rule("b", "app.x."), rule("c", "app.x.y")]


def test_longest_prefix_wins() -> None:
    assert match_rule(RULES, "app.x.y.1") == RULES[2]
    assert match_rule(RULES, "app.x.z") == RULES[1]
    assert match_rule(RULES, "app.q") == RULES[0]
    assert match_rule(RULES, "other") is None


def test_prefix_is_byte_exact_and_case_sensitive() -> None:
    assert match_rule(RULES, "App.x") is None
    assert match_rule([rule("e", "é")], "éa") is not None


def test_length_counts_bytes() -> None:
    assert match_rule([rule("ascii", "ab"), rule("accent", "é")], "éb") == rule("accent", "é")


def test_empty_pattern_matches_everything_last() -> None:
    catch_all = rule("z", "")
    assert match_rule([catch_all], "anything") == catch_all
    assert match_rule([catch_all, *RULES], "app.q") == RULES[0]


def test_equal_patterns_are_won_by_the_smallest_rule_id_in_any_order() -> None:
    """Reference fault 16: the winner depended on hash-map iteration order."""
    tied = [rule("r2", "app."), rule("r10", "app."), rule("r1", "app.")]
    winners = {match_rule(order, "app.job").id for order in itertools.permutations(tied)}  # type: ignore[union-attr]
    assert winners == {"r1"}
