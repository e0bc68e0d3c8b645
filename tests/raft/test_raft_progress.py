"""Tests of `Inflights` (the flow-control window) and `Progress` (a follower's state)."""

from __future__ import annotations

import pytest

from cairn.raft.progress import Inflights, Progress, ProgressState


def progress(match: int = 0, next_index: int = 1, cap: int = 3) -> Progress:
    return Progress(match=match, next_index=next_index, inflights=Inflights(cap))


def test_inflights_fill_free_and_reset() -> None:
    ins = Inflights(3)
    for i in (5, 7, 9):
        assert not ins.full()
        ins.add(i)
    assert ins.full()
    assert ins.count() == 3
    with pytest.raises(OverflowError):
        ins.add(10)
    ins.free_le(6)
    assert (ins.count(), ins.full()) == (2, False)
    ins.free_le(6)  # freeing twice is harmless
    assert ins.count() == 2
    ins.free_le(100)
    assert ins.count() == 0
    ins.add(11)
    ins.reset()
    assert ins.count() == 0


def test_inflights_refuse_to_go_backwards() -> None:
    ins = Inflights(3)
    ins.add(5)
    with pytest.raises(ValueError):
        ins.add(4)


def test_probe_sends_one_message_then_pauses_until_an_answer() -> None:
    pr = progress(match=1, next_index=2)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.update_on_entries_send(entries=2, last_index=3)
    assert pr.is_paused()
    assert pr.next_index == 2  # probing does not advance next optimistically
    assert pr.maybe_update(3)
    assert not pr.is_paused()
    assert (pr.match, pr.next_index) == (3, 4)


def test_replicate_pipelines_until_the_window_is_full() -> None:
    pr = progress(match=3, next_index=4, cap=2)
    pr.become_replicate()
    pr.update_on_entries_send(entries=1, last_index=4)
    assert (pr.next_index, pr.is_paused()) == (5, False)
    pr.update_on_entries_send(entries=2, last_index=6)
    assert (pr.next_index, pr.is_paused()) == (7, True)
    pr.maybe_update(4)
    pr.inflights.free_le(4)
    assert not pr.is_paused()


def test_maybe_update_never_moves_match_backwards() -> None:
    pr = progress(match=5, next_index=6)
    assert not pr.maybe_update(4)
    assert (pr.match, pr.next_index) == (5, 6)


def test_maybe_decr_to_in_replicate_falls_back_to_match() -> None:
    pr = progress(match=5, next_index=10)
    pr.state = ProgressState.REPLICATE
    assert not pr.maybe_decr_to(rejected=4, match_hint=4)  # stale: at or below match
    assert pr.maybe_decr_to(rejected=9, match_hint=9)
    assert pr.next_index == 6


@pytest.mark.parametrize(
    ("next_index", "rejected", "hint", "result", "new_next"),
    [
        (10, 5, 5, False, 10),  # not the probe we sent: stale
        (10, 9, 7, True, 8),  # the follower's hint jumps back
        (10, 9, 9, True, 9),  # no better hint: one step back
        (10, 9, 0, True, 6),  # never below match + 1
    ],
)
def test_maybe_decr_to_in_probe(
    next_index: int, rejected: int, hint: int, result: bool, new_next: int
) -> None:
    pr = progress(match=5, next_index=next_index)
    pr.probe_sent = True
    assert pr.maybe_decr_to(rejected=rejected, match_hint=hint) is result
    assert pr.next_index == new_next
    if result:
        assert not pr.probe_sent


def test_snapshot_state_pauses_and_resumes_after_the_snapshot() -> None:
    pr = progress(match=2, next_index=3)
    pr.become_snapshot(10)
    assert pr.state is ProgressState.SNAPSHOT and pr.is_paused()
    assert pr.pending_snapshot == 10
    pr.become_probe()
    assert pr.state is ProgressState.PROBE
    assert pr.next_index == 11
    assert pr.pending_snapshot == 0


def test_free_first_one_reopens_a_stalled_window() -> None:
    ins = Inflights(2)
    ins.add(3)
    ins.add(5)
    ins.free_first_one()
    assert (ins.count(), ins.full()) == (1, False)
    ins.free_le(4)  # the freed message is gone; 5 is still in flight
    assert ins.count() == 1
    ins.free_first_one()
    ins.free_first_one()  # on an empty window: harmless
    assert ins.count() == 0
