"""The timestamp oracle and its client, driven by hand: a fake member (bounds applied when
the test says so) and a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
import pytest

from cairn.placement.codec import DecodeError
from cairn.placement.driver import PlacementDriver
from cairn.placement.service import (
    MESSAGE_CODEC,
    PlacementMachine,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
)
from cairn.placement.tso import (
    MAX_LOGICAL,
    TSO_BACKWARDS,
    SaveTsoBound,
    TimestampOracle,
    TsoReply,
    TsoRequest,
    TsoSettings,
    compose,
    split,
)
from cairn.placement.tso_client import TsoClient, TsoClientSettings


class ManualClock:
    """`Clock` whose time moves only by `advance`, firing due timers in order."""

    def __init__(self) -> None:
        self.t = 0.0
        self.timers: list[tuple[float, int, Callable[[], None], list[bool]]] = []
        self.seq = 0

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        self.seq += 1
        cancelled = [False]
        self.timers.append((self.t + delay, self.seq, callback, cancelled))
        return _Handle(cancelled)

    def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while True:
            due = sorted((t, s, c, x) for t, s, c, x in self.timers if t <= end and not x[0])
            if not due:
                break
            at, seq, callback, _ = due[0]
            self.timers = [e for e in self.timers if e[1] != seq]
            self.t = max(self.t, at)
            callback()
        self.t = end


@dataclass
class _Handle:
    cancelled: list[bool]

    def cancel(self) -> None:
        self.cancelled[0] = True


@dataclass
class FakeMember:
    """An `OracleHost` whose proposals and reads complete when the test says so."""

    term: int = 1
    leads: bool = True
    saved: int = 0
    proposals: list[tuple[int, Callable[[bool], None]]] = field(default_factory=list)
    confirm_at_once: bool | None = True
    """The answer of every confirmation (None: held in `confirms` until the test answers)."""
    confirms: list[Callable[[bool], None]] = field(default_factory=list)

    def serving(self) -> bool:
        return self.leads

    def current_term(self) -> int:
        return self.term

    def saved_bound(self) -> int:
        return self.saved

    def propose_bound(self, bound_ms: int, done: Callable[[bool], None]) -> None:
        self.proposals.append((bound_ms, done))

    def confirm(self, done: Callable[[bool], None]) -> None:
        if self.confirm_at_once is None:
            self.confirms.append(done)
        else:
            done(self.confirm_at_once)

    def apply_all(self) -> None:
        proposals, self.proposals = self.proposals, []
        for bound, done in proposals:
            self.saved = max(self.saved, bound)
            done(True)


def _oracle(
    wall: list[int], member: FakeMember | None = None, **settings: object
) -> tuple[TimestampOracle, FakeMember, ManualClock]:
    member = member or FakeMember()
    clock = ManualClock()
    oracle = TimestampOracle(member, clock, lambda: wall[0], TsoSettings(**settings))  # type: ignore[arg-type]
    return oracle, member, clock


def _ask(oracle: TimestampOracle, count: int = 1) -> list[int | None]:
    got: list[int | None] = []
    oracle.request(count, got.append)
    return got


def test_layout() -> None:
    assert compose(5, 3) == 5 << 18 | 3
    assert split(compose(1_700_000_000_123, MAX_LOGICAL - 1)) == (1_700_000_000_123, 262143)


def test_a_new_leader_serves_nothing_before_its_bound_above_the_saved_one_applies() -> None:
    wall = [1000]
    oracle, member, _ = _oracle(wall, FakeMember(saved=5000))  # an earlier leader ran ahead
    got = _ask(oracle, 3)
    assert got == [] and [b for b, _ in member.proposals] == [5000 + 3000]
    member.apply_all()
    assert got == [compose(5000, 0)]  # above everything below the saved bound
    assert _ask(oracle) == [compose(5000, 3)]
    wall[0] = 5001
    assert _ask(oracle) == [compose(5001, 0)]


def test_the_planted_bug_serves_from_its_own_clock_at_once() -> None:
    wall = [1000]
    oracle, _, _ = _oracle(wall, FakeMember(saved=5000), plants=frozenset({TSO_BACKWARDS}))
    assert _ask(oracle) == [compose(1000, 0)]  # below the saved bound: backwards


def test_logical_overflow_waits_for_the_next_millisecond() -> None:
    wall = [1000]
    oracle, member, clock = _oracle(wall, max_count=MAX_LOGICAL)
    _ask(oracle)
    member.apply_all()
    got = _ask(oracle, MAX_LOGICAL - 1)
    assert got == [compose(1000, 1)]
    waiting = _ask(oracle, 2)
    assert waiting == []  # the counter is full, the wall clock has not moved
    clock.advance(0.002)
    assert waiting == [compose(1001, 0)]
    assert oracle.stats.waits == 1


def test_the_bound_is_renewed_ahead_and_never_passed() -> None:
    wall = [1000]
    oracle, member, _ = _oracle(wall)
    _ask(oracle)
    member.apply_all()  # bound 4000
    wall[0] = 2500
    assert _ask(oracle) == [compose(2500, 0)]
    assert member.proposals == []  # 1500 ms left: above the margin
    wall[0] = 3100
    assert _ask(oracle) == [compose(3100, 0)]
    assert [b for b, _ in member.proposals] == [3100 + 3000]  # renewed ahead
    wall[0] = 4200  # past the saved bound before the renewal applied
    late = _ask(oracle)
    assert late == []
    member.apply_all()
    assert late == [compose(4200, 0)]


def test_a_term_change_refuses_what_waits_and_prepares_again() -> None:
    wall = [1000]
    oracle, member, _ = _oracle(wall)
    waiting = _ask(oracle)
    member.term = 2
    member.saved = 9000  # another leader of term 2 saved a bound meanwhile
    again = _ask(oracle)
    assert waiting == [None] and again == []
    member.apply_all()
    assert again == [compose(9000, 0)]


def test_a_confirmation_answers_only_the_requests_that_arrived_before_it_started() -> None:
    wall = [1000]
    oracle, member, _ = _oracle(wall, FakeMember(confirm_at_once=None))
    first = _ask(oracle)
    member.apply_all()
    assert first == [] and len(member.confirms) == 1
    second = _ask(oracle)  # arrives while the confirmation is under way
    member.confirms.pop()(True)
    assert first == [compose(1000, 0)] and second == []
    assert len(member.confirms) == 1  # a confirmation of its own
    member.confirms.pop()(True)
    assert second == [compose(1000, 1)]


def test_refusals() -> None:
    wall = [1000]
    oracle, member, _ = _oracle(wall, max_count=10, max_pending=2)
    assert _ask(oracle, 0) == [None] and _ask(oracle, 11) == [None]
    waiting = [_ask(oracle), _ask(oracle), _ask(oracle)]  # the bound is not applied yet
    assert waiting == [[], [], [None]]
    member.apply_all()
    assert waiting == [[compose(1000, 0)], [compose(1000, 1)], [None]]
    member.leads = False
    assert _ask(oracle) == [None]
    member.leads = True
    member.confirm_at_once = False  # leadership not confirmed in time
    got = _ask(oracle)
    member.apply_all()
    assert got == [None]
    member.confirm_at_once = True
    assert _ask(oracle) == [compose(1000, 2)]  # same term: the state is kept


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="renew_margin_ms"):
        TsoSettings(save_window_ms=1000, renew_margin_ms=1000)
    with pytest.raises(ValueError, match="max_count"):
        TsoSettings(max_count=MAX_LOGICAL + 1)
    with pytest.raises(ValueError, match="plants"):
        TsoSettings(plants=frozenset({"nope"}))


# -- wire forms and the replicated bound ---------------------------------------------------


def test_messages_and_the_bound_round_trip_and_are_checked() -> None:
    for message in (TsoRequest(4, 9, 16), TsoReply(1, 4, 9, True, compose(7, 1), 16, 0)):
        assert decode_message(encode_message(message)) == message
    assert decode_batch(encode_batch([SaveTsoBound(1234)])) == (SaveTsoBound(1234),)
    with pytest.raises(DecodeError):
        decode_message(MESSAGE_CODEC.encode(TsoRequest(4, 9, "16")))  # type: ignore[arg-type]


def test_the_machine_keeps_the_largest_bound_through_snapshots() -> None:
    machine = PlacementMachine(PlacementDriver())
    machine.apply(1, encode_batch([SaveTsoBound(5000)]))
    machine.apply(2, encode_batch([SaveTsoBound(4000)]))  # a max, never lower
    assert machine.tso_bound_ms == 5000
    other = PlacementMachine(PlacementDriver())
    other.restore(machine.snapshot())
    assert (other.tso_bound_ms, other.applied_index) == (5000, 2)
    old = msgpack.packb([3, PlacementDriver().snapshot()])  # written before the TSO
    other.restore(old)
    assert (other.tso_bound_ms, other.applied_index) == (0, 3)


# -- the client -----------------------------------------------------------------------------


@dataclass
class Caller:
    got: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _client(
    members: tuple[int, ...] = (1, 2, 3),
) -> tuple[TsoClient, list[tuple[int, TsoRequest]], ManualClock]:
    clock = ManualClock()
    sent: list[tuple[int, TsoRequest]] = []
    settings = TsoClientSettings(attempt_timeout=1.0, retry_delay=0.05, max_batch=4)
    client = TsoClient(9, clock, lambda to, r: sent.append((to, r)), lambda: members, settings)
    return client, sent, clock


def _call(client: TsoClient, timeout: float = 5.0) -> Caller:
    caller = Caller()
    client.timestamp(caller.got.append, caller.errors.append, timeout)
    return caller


def test_concurrent_callers_share_one_request_per_round_trip() -> None:
    client, sent, clock = _client()
    callers = [_call(client) for _ in range(3)]
    assert sent == []  # never from inside the call
    clock.advance(0)
    assert sent == [(1, TsoRequest(9, 1, 3))]
    later = [_call(client) for _ in range(6)]  # wait for the next request, four at most
    clock.advance(0)
    assert len(sent) == 1
    client.on_reply(TsoReply(1, 9, 1, True, 100, 3))
    assert [c.got for c in callers] == [[100], [101], [102]]
    assert sent[1:] == [(1, TsoRequest(9, 2, 4))]
    client.on_reply(TsoReply(1, 9, 2, True, 200, 4))
    client.on_reply(TsoReply(1, 9, 3, True, 300, 2))
    assert [c.got for c in later] == [[200], [201], [202], [203], [300], [301]]


def test_a_refusal_goes_to_the_leader_it_names_and_late_replies_are_dropped() -> None:
    client, sent, clock = _client()
    caller = _call(client)
    clock.advance(0)
    client.on_reply(TsoReply(1, 9, 1, False, leader=3))
    assert sent[-1] == (3, TsoRequest(9, 2, 1)) and client.target == 3
    client.on_reply(TsoReply(1, 9, 1, True, 50, 1))  # a duplicate of the old attempt
    client.on_reply(TsoReply(3, 9, 2, True, 70, 2))  # not an answer to this request
    client.on_reply(TsoReply(3, 9, 2, True, 1 << 64, 1))  # beyond 64 bits
    client.on_reply(TsoReply(3, 9, 2, True, 0, 1))
    assert caller.got == []
    client.on_reply(TsoReply(3, 9, 2, True, 70, 1))
    assert caller.got == [70]


def test_an_unanswered_attempt_moves_on_and_the_deadline_errors_once() -> None:
    client, sent, clock = _client()
    caller = _call(client, timeout=2.5)
    clock.advance(1.01)
    assert [to for to, _ in sent] == [1, 2]
    clock.advance(1.0)
    assert [to for to, _ in sent] == [1, 2, 3]
    clock.advance(0.5)
    assert caller.errors == ["no timestamp within the deadline"] and caller.got == []
    client.on_reply(TsoReply(3, 9, sent[-1][1].request_id, True, 80, 1))
    assert caller.got == [] and client.stats.errors == 1


def test_no_group_known_waits_and_stop_fails_the_callers() -> None:
    client, sent, clock = _client(members=())
    caller = _call(client)
    clock.advance(0.5)
    assert sent == []
    client.stop()
    assert caller.errors == ["stopped"]
    late = _call(client)
    clock.advance(0)
    assert late.errors == ["stopped"]
