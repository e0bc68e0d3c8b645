"""`RawNode`'s pipelined protocol: several numbered Readies in flight.

`advance_append_async` lets a driver take the next Ready while the previous one's write
is on its way to the disk; each Ready hands out only what no earlier one did, and
`on_persist_ready(n)` acknowledges every Ready up to n. What must hold: nothing is
handed out twice or lost, a leader counts its own entries toward a quorum only once
they are acknowledged, and entries replaced while their write was in flight are handed
out again and never count as persisted.
"""

from __future__ import annotations

import random

import pytest

from cairn.raft.config import Config
from cairn.raft.errors import LocalRaftError
from cairn.raft.rawnode import RawNode
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import ConfState, Entry, Message, MessageType, StateRole

MT = MessageType


def _node(node_id: int = 1, voters: tuple[int, ...] = (1, 2, 3)) -> tuple[RawNode, MemoryStorage]:
    storage = MemoryStorage.bootstrap(ConfState(voters=voters))
    config = Config(id=node_id, pre_vote=False, check_quorum=False)
    return RawNode(config, storage, random.Random(1)), storage


def _settle(rn: RawNode, storage: MemoryStorage) -> None:
    """Carry out every pending Ready synchronously."""
    while rn.has_ready():
        rd = rn.ready()
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        rn.advance(rd)


def _leader() -> tuple[RawNode, MemoryStorage]:
    rn, storage = _node()
    rn.campaign()
    _settle(rn, storage)
    for voter in (2, 3):
        rn.step(Message(type=MT.VOTE_RESP, frm=voter, to=1, term=rn.term))
    assert rn.role is StateRole.LEADER
    _settle(rn, storage)  # the empty entry of the new term, written
    last = rn.log.last_index()
    for voter in (2, 3):  # both followers hold it: it commits
        rn.step(Message(type=MT.APP_RESP, frm=voter, to=1, term=rn.term, index=last))
    _settle(rn, storage)
    assert rn.log.committed == rn.log.applied == last
    return rn, storage


def test_two_readies_in_flight_hand_out_each_entry_once() -> None:
    rn, storage = _leader()
    rn.propose(b"a")
    first = rn.ready()
    rn.advance_append_async(first)
    rn.propose(b"b")
    assert rn.has_ready()
    second = rn.ready()
    rn.advance_append_async(second)
    assert [e.data for e in first.entries] == [b"a"]
    assert [e.data for e in second.entries] == [b"b"]
    assert second.number == first.number + 1
    # Both appends left before any fsync (a leader's appends need not wait for it).
    assert {m.to for m in first.messages if m.type is MT.APP} == {2, 3}
    assert rn.ready_in_progress
    storage.append([*first.entries, *second.entries])
    rn.on_persist_ready(second.number)
    assert not rn.ready_in_progress and rn.persisted_number == second.number


def test_the_leader_counts_itself_only_once_persisted() -> None:
    rn, storage = _leader()
    rn.propose(b"a")
    rd = rn.ready()
    rn.advance_append_async(rd)
    index = rd.entries[-1].index
    rn.step(Message(type=MT.APP_RESP, frm=2, to=1, term=rn.term, index=index))
    # One follower holds it, the leader's own write is not acknowledged: not a quorum.
    assert rn.log.committed < index
    storage.append(rd.entries)
    rn.on_persist_ready(rd.number)
    assert rn.log.committed == index
    commit = rn.ready()
    assert [e.index for e in commit.committed_entries] == [index]
    rn.advance_append_async(commit)
    # Handed out for applying: the next Ready does not hand it out again.
    assert not rn.ready().committed_entries


def test_committed_entries_are_handed_out_while_their_write_is_in_flight() -> None:
    rn, _ = _leader()
    rn.propose(b"a")
    rd = rn.ready()
    rn.advance_append_async(rd)
    index = rd.entries[-1].index
    for voter in (2, 3):  # two followers are a quorum without the leader's own fsync
        rn.step(Message(type=MT.APP_RESP, frm=voter, to=1, term=rn.term, index=index))
    nxt = rn.ready()
    assert [e.index for e in nxt.committed_entries] == [index]
    rn.advance_append_async(nxt)
    rn.advance_apply_to(index, nxt.committed_entries)
    assert rn.log.applied == index
    assert rn.ready_in_progress  # the first write still waits for its fsync


def test_entries_replaced_in_flight_are_handed_out_again_and_do_not_count() -> None:
    rn, storage = _node(node_id=2)
    term = rn.term + 1
    last = rn.log.last_index()
    app = Message(
        type=MT.APP,
        frm=1,
        to=2,
        term=term,
        log_term=rn.log.last_term(),
        index=last,
        entries=(
            Entry(term=term, index=last + 1, data=b"x"),
            Entry(term=term, index=last + 2, data=b"y"),
        ),
    )
    rn.step(app)
    first = rn.ready()
    rn.advance_append_async(first)
    assert [e.data for e in first.entries] == [b"x", b"y"]
    # A newer leader overwrites the second entry while the first write is in flight.
    app2 = Message(
        type=MT.APP,
        frm=3,
        to=2,
        term=term + 1,
        log_term=term,
        index=last + 1,
        entries=(Entry(term=term + 1, index=last + 2, data=b"z"),),
    )
    rn.step(app2)
    second = rn.ready()
    rn.advance_append_async(second)
    assert [(e.index, e.data) for e in second.entries] == [(last + 2, b"z")]
    storage.append(first.entries)
    rn.on_persist_ready(first.number)
    # The write of `y` is durable but `y` is not the log's any more: `z` stays unstable.
    assert rn.log.term(last + 2) == term + 1
    assert rn.has_ready() is False or not rn.ready().entries
    storage.append(second.entries)
    rn.on_persist_ready(second.number)
    assert not rn.ready_in_progress


def test_advance_refuses_when_other_readies_are_in_flight() -> None:
    rn, _ = _leader()
    rn.propose(b"a")
    first = rn.ready()
    rn.advance_append_async(first)
    rn.propose(b"b")
    second = rn.ready()
    with pytest.raises(LocalRaftError):
        rn.ready()  # the second was not handed to the disk yet
    with pytest.raises(LocalRaftError):
        rn.advance(second)  # the synchronous protocol: the first is still in flight
    with pytest.raises(LocalRaftError):
        rn.on_persist_ready(second.number)  # acknowledged before its write started
    rn.advance_append_async(second)
    rn.on_persist_ready(second.number)
    assert not rn.ready_in_progress
