"""Redis's `timeout` in `ClientLimiter.sweep`: an idle client is closed by the second sweep
that finds it idle, so a command that reached its socket before the deadline (but was
not read yet, because the loop stalled and uvloop runs due timers before it reads
sockets) keeps the client open."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cairn.runtime.client_limits import ClientLimiter


@dataclass
class FakeState:
    id: int
    last_active: float
    closing: bool = False
    addr: str = "127.0.0.1:1"


@dataclass
class FakeConn:
    state: FakeState
    aborted: bool = False

    def waiting(self) -> bool:
        return False

    def abort(self) -> None:
        self.aborted = True


@dataclass
class FakeServer:
    limits: Any = field(
        default_factory=lambda: SimpleNamespace(
            auth_timeout_ms=10_000, idle_timeout_s=1, normal_output_soft_limit_bytes=0
        )
    )
    clients: dict[int, tuple[FakeConn, FakeState]] = field(default_factory=dict)


def test_an_idle_client_is_closed_at_the_second_sweep_unless_it_spoke() -> None:
    server = FakeServer()
    states = FakeState(1, 0.0), FakeState(2, 0.0)
    silent, talker = ((FakeConn(s), s) for s in states)
    server.clients = {1: silent, 2: talker}
    limiter = ClientLimiter(server)  # type: ignore[arg-type]
    limiter.sweep(5.0)  # both past `timeout`: noted, not closed yet
    assert not silent[0].aborted and not talker[0].aborted
    talker[1].last_active = 5.1  # its command was read after the first sweep
    limiter.sweep(5.3)
    assert silent[0].aborted and not talker[0].aborted
    assert limiter.stats["client_timeouts"] == 1
