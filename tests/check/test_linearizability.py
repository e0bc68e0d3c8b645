"""Hand-made histories: what the checker must reject, with which explanation, and accept."""

from __future__ import annotations

from cairn.check.history import OpType
from cairn.check.linearizability import Outcome, Verdict, check_history
from cairn.check.synth import Interval, interval_history

OK, FAIL, INFO = OpType.OK, OpType.FAIL, OpType.INFO


def put(
    p: int, value: str, start: int, end: int, status: OpType | None = OK, key: str = "x"
) -> Interval:
    return Interval(p, "put", key, value, start, end, status)


def append(p: int, value: str, start: int, end: int, status: OpType | None = OK) -> Interval:
    return Interval(p, "append", "x", value, start, end, status)


def get(p: int, result: str | None, start: int, end: int, key: str = "x") -> Interval:
    return Interval(p, "get", key, None, start, end, OK, result)


def cas(
    p: int, expected: str | None, new: str, start: int, end: int, status: OpType | None = OK
) -> Interval:
    return Interval(p, "cas", "x", (expected, new), start, end, status)


def check(*intervals: Interval, max_states: int = 1_000_000) -> Verdict:
    return check_history(interval_history(intervals), max_states=max_states)


def assert_violation(verdict: Verdict, explanation: str) -> None:
    assert verdict.outcome is Outcome.VIOLATION
    assert not verdict.ok
    assert verdict.key == "x"
    assert verdict.explanation == explanation


# --- rejected ---------------------------------------------------------------------------------


def test_stale_read() -> None:
    verdict = check(put(1, "1", 0, 10), put(2, "2", 20, 30), get(3, "1", 120, 180))
    assert_violation(
        verdict,
        "get(x) -> '1' by process 3 at t=120..180: no linearization; "
        "the latest value any ordering allows is '2'",
    )


def test_lost_write() -> None:
    verdict = check(put(1, "a", 0, 10), get(2, "a", 15, 20), get(2, None, 30, 40))
    assert_violation(
        verdict,
        "get(x) -> nil by process 2 at t=30..40: no linearization; "
        "the latest value any ordering allows is 'a'",
    )


def test_read_of_a_value_never_written() -> None:
    verdict = check(put(1, "a", 0, 10), get(2, "a", 5, 15), get(3, "zz", 5, 25))
    assert_violation(
        verdict,
        "get(x) -> 'zz' by process 3 at t=5..25: no linearization; "
        "the latest value any ordering allows is 'a'",
    )


def test_read_of_a_failed_write() -> None:
    verdict = check(put(1, "a", 0, 10, status=FAIL), get(2, "a", 20, 30))
    assert_violation(
        verdict,
        "get(x) -> 'a' by process 2 at t=20..30: no linearization; "
        "the latest value any ordering allows is nil",
    )


def test_non_atomic_cas() -> None:
    # Both cas operations claim to have seen the key missing: one of them lies.
    verdict = check(cas(1, None, "a", 0, 10), cas(2, None, "b", 5, 15), get(3, "b", 20, 30))
    assert_violation(
        verdict,
        "cas(x, nil -> 'b') by process 2 at t=5..15: no linearization; "
        "it expects nil but the latest value any ordering allows is 'a'",
    )


def test_append_that_skipped_a_completed_append() -> None:
    verdict = check(append(1, "a", 0, 10), append(2, "b", 20, 30), get(3, "b", 40, 50))
    assert_violation(
        verdict,
        "get(x) -> 'b' by process 3 at t=40..50: no linearization; "
        "the latest value any ordering allows is 'ab'",
    )


def test_first_violating_key_is_reported_and_others_skipped() -> None:
    verdict = check(
        put(1, "a", 0, 10, key="good"),
        get(2, "a", 20, 30, key="good"),
        put(1, "a", 40, 50),
        get(2, "b", 60, 70),
        put(1, "c", 80, 90, key="later"),
    )
    assert verdict.outcome is Outcome.VIOLATION
    assert verdict.key == "x"
    assert [k.key for k in verdict.keys] == ["good", "x"]
    assert verdict.ops_checked == 4


def test_budget_gives_unknown_not_violation() -> None:
    # Ten concurrent puts and a read of a value never written: the search must try many
    # orderings before it can rule the history out.
    puts = [put(p, f"v{p}", 0, 100) for p in range(10)]
    verdict = check(*puts, get(11, "never", 0, 100), max_states=50)
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.unknown and not verdict.ok
    assert verdict.key == "x"
    assert verdict.explanation is not None
    assert verdict.explanation.startswith("search budget of 50 states exhausted on key x")
    assert check(*puts, get(11, "never", 0, 100)).outcome is Outcome.VIOLATION


# --- accepted ---------------------------------------------------------------------------------


def test_empty_history_and_key_with_only_failures() -> None:
    assert check().ok
    assert check(put(1, "a", 0, 10, status=FAIL), put(2, "b", 0, 10, status=INFO)).ok


def test_concurrent_write_may_be_seen_or_not() -> None:
    assert check(
        put(1, "a", 0, 10),
        put(2, "b", 5, 30),
        get(3, "a", 12, 20),
        get(4, "b", 15, 25),
        get(3, "b", 31, 40),
    ).ok
    # Two readers concurrent with the write disagree, but the earlier one saw the new value
    # and the later one the old: only possible if the reads overlap.
    assert check(put(1, "b", 0, 100), get(2, "b", 10, 20), get(3, None, 15, 25)).ok
    assert not check(put(1, "b", 0, 100), get(2, "b", 10, 20), get(3, None, 25, 35)).ok


def test_overlapping_cas_chain() -> None:
    assert check(
        cas(1, None, "a", 0, 50),
        cas(2, "a", "b", 10, 60),
        cas(3, "b", "c", 20, 70),
        get(4, "c", 80, 90),
    ).ok


def test_failed_cas_is_ignored() -> None:
    assert check(put(1, "a", 0, 10), cas(2, "z", "b", 20, 30, status=FAIL), get(3, "a", 40, 50)).ok


def test_timed_out_write_that_happened() -> None:
    # The INFO write is read after its client gave up: it took effect late.
    assert check(
        put(1, "a", 0, 10),
        put(2, "b", 20, 30, status=INFO),
        get(3, "a", 40, 50),
        get(3, "b", 60, 70),
    ).ok


def test_timed_out_write_that_did_not_happen() -> None:
    assert check(put(1, "a", 0, 10), put(2, "b", 20, 30, status=INFO), get(3, "a", 40, 50)).ok
    assert check(put(1, "a", 0, 10), append(2, "b", 20, 30, status=None), get(3, "a", 400, 500)).ok


def test_timed_out_write_cannot_take_effect_before_its_invocation() -> None:
    verdict = check(get(3, "b", 0, 10), put(2, "b", 20, 30, status=INFO))
    assert_violation(
        verdict,
        "get(x) -> 'b' by process 3 at t=0..10: no linearization; "
        "the latest value any ordering allows is nil",
    )


def test_timed_out_cas_and_appends_combine() -> None:
    assert check(
        put(1, "a", 0, 10),
        append(2, "b", 20, 30, status=INFO),
        cas(3, "ab", "c", 40, 50, status=INFO),
        append(4, "d", 60, 70),
        get(1, "cd", 80, 90),
    ).ok
    assert not check(
        put(1, "a", 0, 10),
        append(2, "b", 20, 30, status=INFO),
        cas(3, "ab", "c", 40, 50, status=INFO),
        append(4, "d", 60, 70),
        get(1, "abd", 80, 90),
        get(1, "cd", 100, 110),
    ).ok


def test_equal_timestamps_count_as_concurrent() -> None:
    assert check(put(1, "a", 0, 10), get(2, None, 10, 20)).ok


def test_stats_count_operations_and_states() -> None:
    verdict = check(
        put(1, "a", 0, 10),
        put(2, "b", 5, 8, status=FAIL),
        put(3, "c", 5, 6, status=INFO),
        get(4, None, 20, 30, key="y"),
    )
    assert verdict.ok and verdict.key is None and verdict.explanation is None
    assert verdict.ops_checked == 4
    x, y = verdict.keys
    assert (x.key, x.operations, x.ok, x.info, x.failed) == ("x", 3, 1, 1, 1)
    assert x.states >= 0 and x.outcome is Outcome.LINEARIZABLE
    assert (y.key, y.ok, y.outcome) == ("y", 1, Outcome.LINEARIZABLE)
