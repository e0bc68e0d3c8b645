"""The node's keyspace-event publisher without a cluster: only a leader publishes, only the
entries of its own term (at most once across a leader change), only while configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from cairn.raft.types import Entry
from cairn.resp.reply import Integer, Reply
from cairn.runtime.keyspace_events import KeyspaceEvents
from cairn.runtime.range_store import StoreRangeMachine
from cairn.shard.replica import Replica
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.machine import encode_command


@dataclass
class _Machine:
    inner: StoreRangeMachine


@dataclass
class _Replica:
    machine: _Machine
    is_leader: bool
    term: int


def _setup() -> tuple[KeyspaceEvents, StoreRangeMachine, list[tuple[bytes, bytes]]]:
    published: list[tuple[bytes, bytes]] = []

    def publish(channel: bytes, message: bytes) -> Reply:
        published.append((channel, message))
        return Integer(0)

    machine = StoreRangeMachine(MemoryKeyspace(), 1, None)
    events = KeyspaceEvents(publish, lambda: [machine.store])
    return events, machine, published


def _apply(
    events: KeyspaceEvents, machine: StoreRangeMachine, index: int, term: int, replica: _Replica
) -> None:
    machine.apply(index, encode_command("set", [b"k%d" % index, b"v"], 1000))
    entry = Entry(term=term, index=index, data=b"x")
    events.on_apply(cast(Replica, replica), entry)


def test_only_the_leader_publishes_the_entries_of_its_term() -> None:
    events, machine, published = _setup()
    events.configure(b"E$")
    assert machine.store.collect_events
    leader = _Replica(_Machine(machine), is_leader=True, term=3)
    _apply(events, machine, 1, 3, leader)
    assert published == [(b"__keyevent@0__:set", b"k1")]
    _apply(events, machine, 2, 2, leader)  # an earlier term's entry: the old leader's to publish
    follower = _Replica(_Machine(machine), is_leader=False, term=3)
    _apply(events, machine, 3, 3, follower)
    assert published == [(b"__keyevent@0__:set", b"k1")]
    assert machine.store.events == {}  # taken and dropped, not kept


def test_nothing_is_collected_while_the_setting_cannot_publish() -> None:
    events, machine, published = _setup()
    leader = _Replica(_Machine(machine), is_leader=True, term=1)
    for value in (b"", b"K", b"A"):  # no class, or no channel kind
        events.configure(value)
        assert not machine.store.collect_events
    _apply(events, machine, 1, 1, leader)
    assert published == [] and machine.store.events == {}
    events.configure(b"K$")
    _apply(events, machine, 2, 1, leader)
    assert published == [(b"__keyspace@0__:k2", b"set")]
