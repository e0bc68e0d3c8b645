"""The timestamp oracle's real-time order check (`cairn.check.tso.TsoLog`)."""

from __future__ import annotations

from cairn.check.tso import DUPLICATE, NOT_ABOVE, TsoAnomaly, TsoLog


def test_increasing_and_concurrent_timestamps_pass() -> None:
    # (asked, got, ts): the third overlaps the second, so either order is allowed
    log = TsoLog([(0, 10, 5), (11, 20, 9), (15, 25, 7), (26, 30, 12)])
    assert log.anomalies() == [] and log.violations() == []


def test_a_timestamp_not_above_one_received_before_it_was_asked_is_found() -> None:
    # the third was asked at 21, after 9 arrived at 20: 8 went backwards
    log = TsoLog([(0, 10, 5), (11, 20, 9), (21, 30, 8), (31, 40, 10)])
    assert log.anomalies() == [TsoAnomaly(NOT_ABOVE, 2, 1)]
    assert log.violations() == ["timestamp 8 asked at 21 is not above 9"]


def test_equal_to_an_earlier_one_is_both_not_above_and_a_repeat() -> None:
    log = TsoLog([(0, 10, 5), (20, 30, 5)])
    assert log.anomalies() == [TsoAnomaly(NOT_ABOVE, 1, 0), TsoAnomaly(DUPLICATE, 1, 0)]
    assert log.violations() == [
        "timestamp 5 asked at 20 is not above 5",
        "a timestamp was handed out twice",
    ]


def test_a_repeat_among_concurrent_requests_is_found() -> None:
    log = TsoLog([(0, 10, 5), (1, 11, 5)])
    assert log.anomalies() == [TsoAnomaly(DUPLICATE, 1, 0)]


def test_the_witness_is_the_largest_received_before() -> None:
    # received before t=50: 7, 12 and 13 (at 40); 11 asked at 50 is measured against 13
    log = TsoLog([(0, 10, 7), (5, 20, 12), (50, 60, 11), (21, 40, 13)])
    assert log.anomalies() == [TsoAnomaly(NOT_ABOVE, 2, 3)]
