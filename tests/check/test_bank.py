"""The bank checker on hand-made histories."""

from __future__ import annotations

import pytest

from cairn.check.bank import AnomalyKind, check_bank
from cairn.check.history import HistoryError, Op, OpType

OPENING = {"a": 10, "b": 10, "c": 10}


def _history(*ops: tuple[int, OpType, str, object]) -> list[Op]:
    return [Op(p, kind, f, "bank", value, i) for i, (p, kind, f, value) in enumerate(ops)]


def _kinds(history: list[Op], final: dict[str, object] | None) -> list[AnomalyKind]:
    return [a.kind for a in check_bank(history, OPENING, final).anomalies]


GOOD = _history(
    (1, OpType.INVOKE, "transfer", ["a", "b", 3]),
    (2, OpType.INVOKE, "read", None),
    (1, OpType.OK, "transfer", ["a", "b", 3]),
    (2, OpType.OK, "read", {"a": 7, "b": 13, "c": 10}),
    (1, OpType.INVOKE, "transfer", ["b", "c", 5]),
    (1, OpType.INFO, "transfer", ["b", "c", 5]),
    (3, OpType.INVOKE, "transfer", ["c", "a", 9]),
    (3, OpType.FAIL, "transfer", ["c", "a", 9]),
)


def test_conserved_totals_and_explained_finals_pass() -> None:
    for final in ({"a": 7, "b": 13, "c": 10}, {"a": 7, "b": 8, "c": 15}):
        verdict = check_bank(GOOD, OPENING, final)
        assert verdict.ok, verdict.anomalies
        assert verdict.stats.transfers == 1 and verdict.stats.transfers_unknown == 1
        assert "explained" in verdict.stats.describe()


def test_a_read_that_sees_half_a_transfer_is_caught() -> None:
    torn = [*GOOD, *_history((4, OpType.INVOKE, "read", None),
                             (4, OpType.OK, "read", {"a": 7, "b": 10, "c": 10}))]  # fmt: skip
    verdict = check_bank(torn, OPENING, {"a": 7, "b": 13, "c": 10})
    assert [a.kind for a in verdict.anomalies] == [AnomalyKind.WRONG_TOTAL]
    assert "sums to 27, not 30" in verdict.anomalies[0].text


def test_negative_missing_unknown_and_unexplained() -> None:
    assert _kinds(GOOD, {"a": -1, "b": 21, "c": 10}) == [AnomalyKind.NEGATIVE]
    overdrawn = check_bank(GOOD, OPENING, {"a": -1, "b": 21, "c": 10}, allow_negative=True)
    assert [a.kind for a in overdrawn.anomalies] == [AnomalyKind.UNEXPLAINED]
    assert _kinds(GOOD, {"a": 7, "b": 13}) == [AnomalyKind.MISSING]
    assert AnomalyKind.UNKNOWN_ACCOUNT in _kinds(GOOD, {"a": 7, "b": 13, "c": 10, "d": 0})
    applied_twice = {"a": 4, "b": 16, "c": 10}  # the acknowledged a -> b 3 ran twice
    verdict = check_bank(GOOD, OPENING, applied_twice)
    assert [a.kind for a in verdict.anomalies] == [AnomalyKind.UNEXPLAINED]
    assert "lost or applied twice" in verdict.anomalies[0].text


def test_malformed_histories_are_rejected() -> None:
    with pytest.raises(HistoryError, match="from, to, amount"):
        check_bank(_history((1, OpType.INVOKE, "transfer", ["a", 3])), OPENING)
    with pytest.raises(HistoryError, match="unknown function"):
        check_bank(_history((1, OpType.INVOKE, "get", None)), OPENING)
