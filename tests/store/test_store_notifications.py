"""Keyspace notifications at the store: the events of every command family, compared with
redis-server 7.0.15's (a subscriber on `__key*__:*`) line by line; the flags as CONFIG
shows them; expiry, failed commands and the machine that does not collect."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import redis
from store_harness import MachineClient
from store_script import split_args

from cairn.store.commands import EXPIRE_DELETE
from cairn.store.machine import encode_command
from cairn.store.notifications import (
    ALL,
    KEYEVENT,
    KEYSPACE,
    NEW,
    channel_messages,
    flags_text,
    parse_flags,
    publishes,
)

EVENTS = Path(__file__).with_name("notifications") / "events.txt"
MARKER = b"cairn-test-marker"

Pairs = list[tuple[bytes, bytes]]


def script_lines() -> list[str]:
    """The non-comment lines of the event script."""
    lines = EVENTS.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def redis_events(port: int, lines: list[str], flags: str) -> list[Pairs]:
    """The (channel, message) pairs each line publishes on redis-server: the events of a
    command all arrive before the marker published right after it."""
    client = redis.Redis(port=port)
    client.flushall()
    client.config_set("notify-keyspace-events", flags)
    sub = redis.Redis(port=port).pubsub()
    sub.psubscribe("__key*__:*")
    sub.subscribe(MARKER)
    for _ in range(2):
        assert sub.get_message(timeout=5) is not None
    out: list[Pairs] = []
    try:
        for line in lines:
            with contextlib.suppress(redis.ResponseError):
                client.execute_command(*split_args(line))
            client.publish(MARKER, b"")
            out.append(_until_marker(sub))
    finally:
        sub.close()
        client.config_set("notify-keyspace-events", "")
    return out


def _until_marker(sub: redis.client.PubSub) -> Pairs:
    got: Pairs = []
    while True:
        message = sub.get_message(timeout=5)
        assert message is not None, "redis-server sent no marker"
        if message["channel"] == MARKER:
            return got
        if message["type"] == "pmessage":
            got.append((message["channel"], message["data"]))


def cairn_events(lines: list[str], flags: int) -> list[Pairs]:
    """The pairs each line publishes on a collecting `StoreMachine`."""
    client = MachineClient(clock=lambda: 1_700_000_000_000)
    client.machine.collect_events = True
    out: list[Pairs] = []
    for line in lines:
        before = client.index
        client.call(*split_args(line))
        events = client.machine.take_events(client.index) if client.index > before else []
        out.append(channel_messages(flags, events))
    return out


@pytest.mark.parametrize("flags", ["KEA", "Kn", "E$lshztgx"])
def test_events_match_redis_command_by_command(redis_server_port: int, flags: str) -> None:
    lines = script_lines()
    expected = redis_events(redis_server_port, lines, flags)
    parsed = parse_flags(flags.encode())
    assert parsed is not None
    got = cairn_events(lines, parsed)
    assert sum(len(e) for e in expected) > 0
    for line, want, have in zip(lines, expected, got, strict=True):
        assert have == want, line


def test_flags_parse_and_show_as_redis() -> None:
    # The pairs are redis-server 7.0.15's CONFIG SET value -> CONFIG GET value.
    shown = {
        "KEA": b"AKE",
        "AKEmn": b"AKEm",
        "gx$lshzetdKE": b"AKE",
        "n": b"n",
        "Em": b"Em",
        "EKnmdtexzhsl$g": b"AKEm",
        "Ex": b"xE",
        "": b"",
        "AA": b"A",
    }
    for given, want in shown.items():
        flags = parse_flags(given.encode())
        assert flags is not None and flags_text(flags) == want, given
    assert parse_flags(b"x E") is None
    assert parse_flags(b"q") is None
    assert not publishes(ALL) and not publishes(KEYSPACE | KEYEVENT)
    assert publishes(KEYEVENT | NEW)


def _machine(collect: bool = True) -> tuple[MachineClient, list[int]]:
    clock = [1_000_000]
    client = MachineClient(clock=lambda: clock[0])
    client.machine.collect_events = collect
    return client, clock


def _events(client: MachineClient) -> list[tuple[str, bytes]]:
    return [(event, key) for _, event, key in client.machine.take_events(client.index)]


def test_expiry_reports_expired_where_the_key_is_deleted() -> None:
    client, clock = _machine()
    client.call("SET", "k", "v", "PX", "100")
    client.call("SET", "j", "v", "PX", "100")
    clock[0] += 200
    # A write meeting an expired key deletes it first, as Redis's expireIfNeeded does.
    client.call("LPUSH", "k", "x")
    assert _events(client) == [("expired", b"k"), ("new", b"k"), ("lpush", b"k")]
    # Active expiry: the leader proposes the deletion of what it found expired.
    client.index += 1
    now = client.machine.effective_now(clock[0])
    client.machine.apply(client.index, encode_command(EXPIRE_DELETE, [b"j", b"k"], now))
    assert _events(client) == [("expired", b"j")]


def test_failed_commands_report_nothing() -> None:
    client, _ = _machine()
    client.call("SET", "s", "v")
    client.machine.take_events(client.index)
    client.call("LPUSH", "s", "x")  # WRONGTYPE: nothing happened
    assert _events(client) == []
    client.call("RENAME", "nosuch", "t")
    assert _events(client) == []


def test_a_machine_that_does_not_collect_records_nothing() -> None:
    client, _ = _machine(collect=False)
    client.call("SET", "k", "v")
    client.call("DEL", "k")
    assert client.machine.events == {}
    assert client.machine.take_events(client.index) == []


def test_the_script_covers_every_family() -> None:
    names = {split_args(line)[0].upper().decode() for line in script_lines()}
    for family in ("SET", "RENAME", "COPY", "EXPIRE", "PERSIST", "DEL", "HSET", "BLPOP"):
        assert family in names
    for family in ("SMOVE", "ZADD", "BZPOPMIN", "XADD", "XGROUP", "XREADGROUP", "XCLAIM"):
        assert family in names
    for family in ("RESTORE", "SORT", "GEOSEARCHSTORE", "BITFIELD", "PFMERGE", "GETEX"):
        assert family in names
