"""The invariant checker catches hand-made violations of each property (and only those)."""

from __future__ import annotations

import pytest

from cairn.raft.types import Entry
from cairn.sim.invariants import InvariantChecker, InvariantKind, InvariantViolationError


def checker() -> InvariantChecker:
    return InvariantChecker(lambda: (42, 1000))


def log_of(*terms: int) -> dict[int, int]:
    return {i + 1: t for i, t in enumerate(terms)}


def term_at(log: dict[int, int]):  # type: ignore[no-untyped-def]
    return lambda i: log.get(i)


def entry_at(log: dict[int, int], data: bytes = b""):  # type: ignore[no-untyped-def]
    return lambda i: Entry(term=log[i], index=i, data=data) if i in log else None


def expect(kind: InvariantKind) -> pytest.RaisesContext[InvariantViolationError]:
    return pytest.raises(InvariantViolationError, match=kind.value)


def test_two_leaders_in_one_term_break_election_safety() -> None:
    c = checker()
    c.leader_elected(1, 3, term_at({}), 1)
    c.leader_elected(1, 3, term_at({}), 1)  # the same leader observed twice is fine
    with expect(InvariantKind.ELECTION_SAFETY) as info:
        c.leader_elected(2, 3, term_at({}), 1)
    violation = info.value.violation
    assert (violation.step, violation.time) == (42, 1000)
    assert "nodes 1 and 2 both lead term 3" in violation.description


def test_same_index_and_term_with_other_data_breaks_log_matching() -> None:
    c = checker()
    c.entries_written(1, (Entry(term=2, index=5, data=b"a"),), term_at(log_of(1, 1, 1, 1)))
    c.entries_written(2, (Entry(term=2, index=5, data=b"a"),), term_at(log_of(1, 1, 1, 1)))
    with expect(InvariantKind.LOG_MATCHING):
        c.entries_written(3, (Entry(term=2, index=5, data=b"b"),), term_at(log_of(1, 1, 1, 1)))


def test_same_entry_after_a_different_prefix_breaks_log_matching() -> None:
    c = checker()
    c.entries_written(1, (Entry(term=3, index=4, data=b"x"),), term_at(log_of(1, 1, 2)))
    with expect(InvariantKind.LOG_MATCHING):
        c.entries_written(2, (Entry(term=3, index=4, data=b"x"),), term_at(log_of(1, 1, 1)))


def test_applying_different_entries_at_one_index_breaks_state_machine_safety() -> None:
    c = checker()
    c.applied(1, Entry(term=1, index=1, data=b"put x"), 1)
    with expect(InvariantKind.STATE_MACHINE_SAFETY):
        c.applied(2, Entry(term=1, index=1, data=b"put y"), 1)


def test_a_leader_without_a_committed_entry_breaks_leader_completeness() -> None:
    c = checker()
    committed = log_of(1, 1, 2)
    c.commit_advanced(1, 3, 2, entry_at(committed))
    c.leader_elected(2, 3, term_at(log_of(1, 1, 2, 3)), 1)
    c.leader_elected(4, 2, term_at(log_of(1, 1)), 1)  # a late leader of an earlier term
    with expect(InvariantKind.LEADER_COMPLETENESS):
        c.leader_elected(3, 4, term_at(log_of(1, 1)), 1)


def test_overwriting_an_entry_below_ones_commit_index_loses_it() -> None:
    c = checker()
    log = log_of(1, 1, 2)
    c.commit_advanced(1, 3, 2, entry_at(log))
    # a deposed leader appending at a committed index it never committed is legal
    c.entries_written(2, (Entry(term=1, index=3),), term_at(log_of(1, 1)))
    with expect(InvariantKind.COMMITTED_ENTRY_LOST):
        c.entries_written(1, (Entry(term=4, index=3),), term_at(log_of(1, 1)))


def test_committing_another_entry_at_a_committed_index_loses_it() -> None:
    c = checker()
    c.commit_advanced(1, 2, 1, entry_at(log_of(1, 1)))
    with expect(InvariantKind.COMMITTED_ENTRY_LOST):
        c.commit_advanced(2, 2, 2, entry_at(log_of(1, 2)))


def test_final_check_needs_every_committed_entry() -> None:
    c = checker()
    c.commit_advanced(1, 3, 1, entry_at(log_of(1, 1, 1)))
    c.final_check(1, term_at(log_of(1, 1, 1, 2)), 1)
    c.final_check(1, term_at(log_of(1)), 4)  # compacted into a snapshot: fine
    with expect(InvariantKind.COMMITTED_ENTRY_LOST):
        c.final_check(2, term_at(log_of(1, 1)), 1)


def test_the_first_violation_is_remembered_even_if_the_raise_is_swallowed() -> None:
    c = checker()
    c.leader_elected(1, 3, term_at({}), 1)
    for node in (2, 3):
        with expect(InvariantKind.ELECTION_SAFETY):
            c.leader_elected(node, 3, term_at({}), 1)
    assert c.violation is not None
    assert "nodes 1 and 2 both lead term 3" in c.violation.description


def test_a_failed_node_is_a_violation() -> None:
    c = checker()
    with expect(InvariantKind.NODE_FAILED) as info:
        c.node_failed(4, AssertionError("gap in the log"))
    assert "node 4 failed" in info.value.violation.description
    assert c.violation == info.value.violation
