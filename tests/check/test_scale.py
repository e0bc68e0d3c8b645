"""Long generated histories: the search stays near one configuration per operation.

Counts configurations rather than seconds, so the tests are deterministic on any machine;
a lost reduction shows up as a jump in the count.
"""

from __future__ import annotations

from random import Random

from cairn.check.linearizability import Outcome, check_history
from cairn.check.synth import NEVER_WRITTEN, Workload, corrupt_read, random_history

WORKLOAD = Workload(ops=4000, keys=4, processes=8, info_rate=0.05, fail_rate=0.02)


def test_long_linearizable_history_is_cheap() -> None:
    history = random_history(Random(7), WORKLOAD)
    verdict = check_history(history)
    assert verdict.outcome is Outcome.LINEARIZABLE
    assert verdict.ops_checked == WORKLOAD.ops
    assert sum(k.states for k in verdict.keys) < 3 * WORKLOAD.ops
    assert sum(k.info for k in verdict.keys) > 100  # the timeouts are really there


def test_long_history_with_one_bad_read_is_rejected_at_that_read() -> None:
    history = corrupt_read(random_history(Random(7), WORKLOAD), Random(1))
    verdict = check_history(history)
    assert verdict.outcome is Outcome.VIOLATION
    assert verdict.explanation is not None
    assert verdict.explanation.startswith("get(")
    assert f"-> '{NEVER_WRITTEN}' by process" in verdict.explanation


def test_budget_stops_a_hot_key() -> None:
    hot = Workload(ops=3000, keys=1, processes=10, info_rate=0.1)
    verdict = check_history(corrupt_read(random_history(Random(3), hot), Random(1)), 2000)
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.keys[0].states == 2001
