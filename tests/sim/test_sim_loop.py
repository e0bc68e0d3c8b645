"""The event loop: ordering by (time, sequence), cancellation, pausing, the digest."""

from __future__ import annotations

from cairn.sim.loop import EventLoop


def run_all(loop: EventLoop) -> None:
    while loop.run_one():
        pass


def test_events_run_in_time_then_schedule_order() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.call_at(20, 0, "b", lambda: seen.append("b"))
    loop.call_at(10, 0, "a", lambda: seen.append("a"))
    loop.call_at(20, 0, "c", lambda: seen.append("c"))
    run_all(loop)
    assert seen == ["a", "b", "c"]
    assert loop.now == 20
    assert loop.steps == 3


def test_cancelled_events_do_not_run_or_count() -> None:
    loop = EventLoop()
    seen: list[str] = []
    event = loop.call_later(5, 0, "x", lambda: seen.append("x"))
    event.cancel()
    run_all(loop)
    assert seen == []
    assert loop.steps == 0


def test_paused_owner_events_wait_for_resume_in_order() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.pause(7)
    loop.call_at(10, 7, "n7-first", lambda: seen.append("n7-first"))
    loop.call_at(15, 7, "n7-second", lambda: seen.append("n7-second"))
    loop.call_at(20, 0, "harness", lambda: seen.append("harness"))
    loop.call_at(30, 0, "resume", lambda: loop.resume(7))
    run_all(loop)
    assert seen == ["harness", "n7-first", "n7-second"]
    assert loop.now == 30


def test_digest_depends_on_events_and_times() -> None:
    def digest(times: list[int]) -> str:
        loop = EventLoop()
        for t in times:
            loop.call_at(t, 0, "e", lambda: None)
        run_all(loop)
        return loop.digest()

    assert digest([1, 2]) == digest([1, 2])
    assert digest([1, 2]) != digest([1, 3])
