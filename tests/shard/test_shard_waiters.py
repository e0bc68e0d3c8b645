"""`Waiters`: first come first served per key, no lost wake-up, pops wake no one."""

from __future__ import annotations

from cairn.shard.waiters import Waiter, Waiters, WaitState, wait_keys, wake_keys


def recorder(log: list[str], name: str, keys: tuple[bytes, ...]) -> Waiter:
    """A waiter whose attempts are appended to `log`."""
    return Waiter(keys, lambda: log.append(name))


def test_parked_waiters_wake_in_arrival_order() -> None:
    waiters, log = Waiters(), []
    a, b = recorder(log, "a", (b"k",)), recorder(log, "b", (b"k", b"j"))
    waiters.add(a)
    waiters.add(b)
    assert log == ["a", "b"], "each makes its first attempt at once"
    waiters.blocked(a)
    waiters.blocked(b)
    assert (a.state, b.state) == (WaitState.PARKED, WaitState.PARKED)
    waiters.touched([b"other"])
    assert log == ["a", "b"]
    waiters.touched([b"k"])
    assert log == ["a", "b", "a", "b"]
    waiters.finish(a)
    waiters.blocked(b)
    waiters.touched([b"j"])
    assert log[-1] == "b" and len(waiters) == 1


def test_a_write_applied_during_an_attempt_is_not_lost() -> None:
    waiters, log = Waiters(), []
    a = recorder(log, "a", (b"k",))
    waiters.add(a)
    waiters.touched([b"k"])  # applied while the first attempt was in flight
    assert log == ["a"] and a.dirty
    waiters.blocked(a)  # that attempt was decided before the write: try again at once
    assert log == ["a", "a"] and a.state is WaitState.PENDING and not a.dirty
    waiters.blocked(a)
    assert a.state is WaitState.PARKED


def test_finished_waiters_are_forgotten() -> None:
    waiters, log = Waiters(), []
    a = recorder(log, "a", (b"k", b"j"))
    waiters.add(a)
    waiters.finish(a)
    waiters.finish(a)
    assert len(waiters) == 0
    waiters.touched([b"k", b"j"])
    waiters.blocked(a)
    assert log == ["a"] and a.state is WaitState.DONE


def test_which_keys_wait_and_which_wake() -> None:
    assert wait_keys("blpop", [b"a", b"b"]) == (b"a", b"b")
    assert wait_keys("blmove", [b"src", b"dst"]) == (b"src",)
    assert list(wake_keys("lpush", [b"a"], blocking=False)) == [b"a"]
    assert list(wake_keys("blpop", [b"a", b"b"], blocking=True)) == []
    assert list(wake_keys("brpoplpush", [b"src", b"dst"], blocking=True)) == [b"dst"]
