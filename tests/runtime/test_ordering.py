"""ProgramOrder: a client's pipelined commands behave as if run one by one."""

from __future__ import annotations

from collections.abc import Callable

from cairn.runtime.ordering import ProgramOrder


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finishers: dict[str, Callable[[], None]] = {}

    def cmd(self, name: str) -> Callable[[Callable[[], None]], None]:
        def start(finished: Callable[[], None]) -> None:
            self.started.append(name)
            self.finishers[name] = finished

        return start


def test_writes_pipeline_together_and_reads_together() -> None:
    order, r = ProgramOrder(), Recorder()
    for name in ("w1", "w2", "w3"):
        order.submit(True, r.cmd(name))
    assert r.started == ["w1", "w2", "w3"]
    order2, r2 = ProgramOrder(), Recorder()
    for name in ("r1", "r2"):
        order2.submit(False, r2.cmd(name))
    assert r2.started == ["r1", "r2"]


def test_a_read_waits_for_earlier_writes_and_later_commands_wait_for_it() -> None:
    order, r = ProgramOrder(), Recorder()
    order.submit(True, r.cmd("w1"))
    order.submit(True, r.cmd("w2"))
    order.submit(False, r.cmd("r1"))
    order.submit(True, r.cmd("w3"))
    order.submit(False, r.cmd("r2"))
    assert r.started == ["w1", "w2"]
    r.finishers["w2"]()
    assert r.started == ["w1", "w2"]  # w1 still in flight
    r.finishers["w1"]()
    assert r.started == ["w1", "w2", "r1"]
    r.finishers["r1"]()
    assert r.started == ["w1", "w2", "r1", "w3"]
    r.finishers["w3"]()
    assert r.started == ["w1", "w2", "r1", "w3", "r2"]
    r.finishers["r2"]()
    assert order.reads == 0 and order.writes == 0


def test_an_exclusive_command_waits_for_everything_earlier_and_holds_everything_later() -> None:
    order, r = ProgramOrder(), Recorder()
    order.submit(True, r.cmd("w1"))
    order.submit(True, r.cmd("s1"), exclusive=True)
    order.submit(True, r.cmd("w2"))
    order.submit(False, r.cmd("r1"))
    assert r.started == ["w1"]  # a write in flight: the script waits (it reads)
    assert not order.admits(False) and not order.admits(True)
    r.finishers["w1"]()
    assert r.started == ["w1", "s1"]
    r.finishers["s1"]()
    assert r.started == ["w1", "s1", "w2"]
    r.finishers["w2"]()
    assert r.started == ["w1", "s1", "w2", "r1"]
    r.finishers["r1"]()
    order.submit(False, r.cmd("r2"))
    order.submit(True, r.cmd("s2"), exclusive=True)
    assert r.started[-1] == "r2"  # a read in flight: the script waits (it writes)
    r.finishers["r2"]()
    assert r.started[-1] == "s2" and order.reads == 1 and order.writes == 1
    r.finishers["s2"]()
    assert order.reads == 0 and order.writes == 0
