"""`RawNode`'s read-only views and its lease clock: what drivers use instead of the core.

Each view must say what the core holds at that moment (the drivers decide quiescence,
lease reads and placement reports on them), and `advance_lease_clock` must move the lease
clock alone, leaving the election timer where it stood.
"""

from __future__ import annotations

import random

import pytest

from cairn.raft.config import Config
from cairn.raft.rawnode import RawNode
from cairn.raft.storage import BOOTSTRAP_INDEX, MemoryStorage
from cairn.raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    StateRole,
)


def _node(voters: tuple[int, ...] = (1, 2, 3)) -> tuple[RawNode, MemoryStorage]:
    storage = MemoryStorage.bootstrap(ConfState(voters=voters))
    config = Config(id=1, pre_vote=False, check_quorum=False)
    return RawNode(config, storage, random.Random(1)), storage


def _persist(rn: RawNode, storage: MemoryStorage) -> list[Message]:
    """Carry out every pending Ready; the messages they sent."""
    sent: list[Message] = []
    while rn.has_ready():
        rd = rn.ready()
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        sent += [*rd.messages, *rd.persisted_messages]
        rn.advance(rd)
    return sent


def _elect(rn: RawNode, storage: MemoryStorage) -> None:
    rn.campaign()
    _persist(rn, storage)
    for voter in (2, 3):
        rn.step(Message(type=MessageType.VOTE_RESP, frm=voter, to=1, term=rn.term))
    assert rn.role is StateRole.LEADER


def test_a_fresh_follower_views_its_bootstrapped_state() -> None:
    rn, _ = _node()
    assert (rn.id, rn.vote, rn.lead, rn.role) == (1, NONE, NONE, StateRole.FOLLOWER)
    assert rn.term == rn.log.last_term() == rn.log.term(BOOTSTRAP_INDEX) >= 1
    assert rn.log.first_index() == BOOTSTRAP_INDEX + 1
    assert rn.log.last_index() == rn.log.committed == rn.log.applied == BOOTSTRAP_INDEX
    assert rn.log.term(BOOTSTRAP_INDEX + 5) == 0  # beyond the log
    assert rn.peer_matches() == {}  # only a leader tracks its peers
    assert not rn.has_unsent_messages() and not rn.conf_change_pending()


def test_a_leader_views_its_term_log_and_peers_as_they_change() -> None:
    rn, storage = _node()
    boot = rn.term
    _elect(rn, storage)
    assert (rn.term, rn.vote, rn.lead) == (boot + 1, 1, 1)
    last = rn.log.last_index()
    assert rn.log.last_term() == rn.log.term(last) == boot + 1
    assert rn.has_unsent_messages()  # the appends of its empty entry
    _persist(rn, storage)
    assert not rn.has_unsent_messages()
    assert rn.peer_matches() == {1: last, 2: 0, 3: 0}
    rn.step(Message(type=MessageType.APP_RESP, frm=2, to=1, term=rn.term, index=last))
    assert rn.peer_matches()[2] == last
    assert rn.log.committed == last
    _persist(rn, storage)
    assert rn.log.applied == last


def test_a_membership_change_is_pending_until_committed() -> None:
    rn, storage = _node()
    _elect(rn, storage)
    for voter in (2, 3):
        last = rn.log.last_index()
        rn.step(Message(type=MessageType.APP_RESP, frm=voter, to=1, term=rn.term, index=last))
    _persist(rn, storage)
    rn.propose_conf_change(ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER, 4),)))
    _persist(rn, storage)
    assert rn.conf_change_pending()
    last = rn.log.last_index()
    rn.step(Message(type=MessageType.APP_RESP, frm=2, to=1, term=rn.term, index=last))
    assert not rn.conf_change_pending()


def test_the_lease_clock_moves_alone() -> None:
    rn, _ = _node()
    boot = rn.term
    rn.tick()
    assert rn.lease_clock == 1
    elapsed = rn.election_elapsed
    rn.advance_lease_clock(500)  # far past any election timeout
    assert rn.lease_clock == 501
    assert rn.election_elapsed == elapsed
    assert rn.role is StateRole.FOLLOWER and rn.term == boot  # no election was started
    with pytest.raises(ValueError, match="cannot go back"):
        rn.advance_lease_clock(-1)
