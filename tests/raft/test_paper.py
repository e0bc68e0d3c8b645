"""Paper tests: one test per rule of the Raft paper (and of the thesis where the paper is
silent), in the spirit of etcd-raft's raft_paper_test.go. Each test names the rule it
checks and quotes the sentence; §-numbers refer to "In Search of an Understandable
Consensus Algorithm (Extended Version)" unless marked "thesis" (Ongaro, 2014).

The tests drive single `RawNode`s by hand, stepping crafted messages and reading the
`Ready`s, or a small `InteractionEnv` cluster when several nodes must talk. A few tests
switch on a `PlantedBug` to show that the check they make would catch that bug.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest
from interaction_env import InteractionEnv

from cairn.raft.config import Config, PlantedBug
from cairn.raft.errors import ProposalDroppedError
from cairn.raft.rawnode import RawNode
from cairn.raft.ready import Ready
from cairn.raft.storage import BOOTSTRAP_INDEX, MemoryStorage
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadOnlyOption,
    StateRole,
)

MT = MessageType
FIRST = BOOTSTRAP_INDEX + 1
"""The index of the first log entry of a bootstrapped group."""


# -- helpers -------------------------------------------------------------------------------


@dataclass(slots=True)
class Peer:
    """A `RawNode` with its storage; `drain` carries out its Readies as the contract says."""

    rn: RawNode
    storage: MemoryStorage

    @property
    def id(self) -> NodeId:
        return self.rn.raft.id

    @property
    def role(self) -> StateRole:
        return self.rn.raft.role

    @property
    def term(self) -> int:
        return self.rn.raft.term

    def ready(self) -> Ready:
        """Take one Ready, persist it, advance, and return it."""
        rd = self.rn.ready()
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
        self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        self.rn.advance(rd)
        return rd

    def outbox(self) -> list[Message]:
        """Handle every pending Ready and return all messages they sent, in order."""
        msgs: list[Message] = []
        while self.rn.has_ready():
            rd = self.ready()
            msgs.extend(rd.messages)
            msgs.extend(rd.persisted_messages)
        return msgs

    def log(self) -> list[tuple[int, int]]:
        """(index, term) of every entry in storage."""
        first, last = self.storage.first_index(), self.storage.last_index()
        return (
            [(e.index, e.term) for e in self.storage.entries(first, last + 1)]
            if last >= first
            else []
        )

    def step(self, **fields: object) -> None:
        """Step a message addressed to this node."""
        self.rn.step(Message(to=self.id, **fields))  # type: ignore[arg-type]


def new_peer(
    node_id: NodeId = 1,
    voters: tuple[NodeId, ...] = (1, 2, 3),
    log_terms: tuple[int, ...] = (),
    term: int = 0,
    learners: tuple[NodeId, ...] = (),
    voters_outgoing: tuple[NodeId, ...] = (),
    seed: int | None = None,
    **config: object,
) -> Peer:
    """A node of a bootstrapped group whose log holds entries of `log_terms` from FIRST on.

    Pre-vote and check-quorum are off unless asked for, so that each test sees the rule
    of the paper it is about and nothing else.
    """
    cs = ConfState(voters=voters, learners=learners, voters_outgoing=voters_outgoing)
    storage = MemoryStorage.bootstrap(cs)
    storage.append([Entry(term=t, index=FIRST + i) for i, t in enumerate(log_terms)])
    if term:
        storage.set_hard_state(HardState(term=term, commit=BOOTSTRAP_INDEX))
    options: dict[str, object] = {"pre_vote": False, "check_quorum": False, **config}
    cfg = Config(id=node_id, **options)  # type: ignore[arg-type]
    rng = random.Random(node_id if seed is None else seed)
    return Peer(RawNode(cfg, storage, rng), storage)


def sent(msgs: list[Message], t: MessageType) -> list[Message]:
    """The messages of one type."""
    return [m for m in msgs if m.type is t]


def elect(p: Peer) -> list[Message]:
    """Make `p` leader by granting it the votes of every other voter; returns its appends."""
    p.rn.campaign()
    p.outbox()
    for v in p.rn.raft.prs.config.voters.ids():
        if v != p.id:
            p.step(type=MT.VOTE_RESP, frm=v, term=p.term)
    assert p.role is StateRole.LEADER
    return p.outbox()


def ack(p: Peer, frm: NodeId, index: int) -> list[Message]:
    """A follower acknowledges entries up to `index`; returns what the leader sends then."""
    p.step(type=MT.APP_RESP, frm=frm, term=p.term, index=index)
    return p.outbox()


def commit_empty_entry(p: Peer) -> None:
    """Let a fresh leader commit the empty entry of its term with every follower's help."""
    last = p.rn.raft.raft_log.last_index()
    for v in p.rn.raft.prs.config.voters.ids():
        if v != p.id:
            ack(p, v, last)
    assert p.rn.raft.raft_log.committed == last


def cluster(n: int = 3, **config: object) -> InteractionEnv:
    """An interaction environment of `n` bootstrapped voters, its output silenced."""
    env = InteractionEnv()
    env.out.silent = True
    voters = tuple(range(1, n + 1))
    options: dict[str, object] = {"pre_vote": False, "check_quorum": False, **config}
    for i in voters:
        cfg = Config(id=i, **options)  # type: ignore[arg-type]
        env.add_node(cfg, MemoryStorage.bootstrap(ConfState(voters=voters)))
    return env


# -- §5.1 terms ----------------------------------------------------------------------------


def _make_role(p: Peer, role: StateRole) -> None:
    if role is StateRole.CANDIDATE:
        p.rn.campaign()
    elif role is StateRole.LEADER:
        elect(p)
    p.outbox()
    assert p.role is role


@pytest.mark.parametrize("role", [StateRole.FOLLOWER, StateRole.CANDIDATE, StateRole.LEADER])
def test_higher_term_turns_any_role_into_follower(role: StateRole) -> None:
    """§5.1: "If one server's current term is smaller than the other's, then it updates
    its current term to the larger value. If a candidate or leader discovers that its
    term is out of date, it immediately reverts to follower state."
    """
    p = new_peer()
    _make_role(p, role)
    higher = p.term + 3
    p.step(type=MT.HEARTBEAT, frm=2, term=higher)
    assert (p.role, p.term, p.rn.raft.lead) == (StateRole.FOLLOWER, higher, 2)
    rd = p.ready()
    assert rd.hard_state is not None and rd.hard_state.term == higher
    assert rd.must_sync


@pytest.mark.parametrize("check_quorum", [False, True])
def test_request_with_stale_term_is_rejected(check_quorum: bool) -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the
    request." Nothing from the stale leader is appended; with check-quorum the follower
    tells it the current term so that it steps down.
    """
    p = new_peer(term=5, check_quorum=check_quorum)
    p.outbox()
    entries = (Entry(term=4, index=FIRST),)
    p.step(type=MT.APP, frm=2, term=4, index=BOOTSTRAP_INDEX, log_term=1, entries=entries)
    msgs = p.outbox()
    assert p.log() == []
    assert p.term == 5
    replies = sent(msgs, MT.APP_RESP)
    if check_quorum:
        assert [(m.to, m.term) for m in replies] == [(2, 5)]
    else:
        assert replies == []


# -- §5.2 leader election ------------------------------------------------------------------


def test_leader_sends_heartbeats_every_heartbeat_tick() -> None:
    """§5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log
    entries) to all followers in order to maintain their authority."
    """
    p = new_peer(heartbeat_tick=3)
    elect(p)
    for round_ in range(3):
        p.rn.tick()
        p.rn.tick()
        assert sent(p.outbox(), MT.HEARTBEAT) == [], f"early heartbeat in round {round_}"
        p.rn.tick()
        beats = sent(p.outbox(), MT.HEARTBEAT)
        assert sorted(m.to for m in beats) == [2, 3]
        assert all(not m.entries and m.term == p.term for m in beats)


def _ticks_until_campaign(p: Peer, limit: int = 100) -> int:
    for n in range(1, limit + 1):
        p.rn.tick()
        if p.role is StateRole.CANDIDATE:
            return n
    raise AssertionError("no election started")


@pytest.mark.parametrize("role", [StateRole.FOLLOWER, StateRole.CANDIDATE])
def test_election_starts_after_an_election_timeout(role: StateRole) -> None:
    """§5.2: "If a follower receives no communication over a period of time called the
    election timeout, then it assumes there is no viable leader and begins an election";
    a candidate that neither wins nor loses "will time out and start a new election by
    incrementing its term." The timeout lies in [election_tick, 2 * election_tick).
    """
    p = new_peer(election_tick=10)
    _make_role(p, role)
    term = p.term
    if role is StateRole.CANDIDATE:
        n = 0
        while p.term == term:
            p.rn.tick()
            n += 1
        assert 10 <= n < 20
    else:
        assert 10 <= _ticks_until_campaign(p) < 20
    assert p.term == term + 1
    assert p.role is StateRole.CANDIDATE
    requests = sent(p.outbox(), MT.VOTE)
    assert sorted(m.to for m in requests) == [2, 3]


def test_follower_that_hears_from_the_leader_does_not_campaign() -> None:
    """§5.2: "A server remains in follower state as long as it receives valid RPCs from a
    leader or candidate."
    """
    p = new_peer(node_id=2, election_tick=10)
    for _ in range(100):
        p.rn.tick()
        p.step(type=MT.HEARTBEAT, frm=1, term=2)
    assert p.role is StateRole.FOLLOWER
    assert p.rn.raft.lead == 1


def test_randomized_election_timeouts_differ_between_nodes() -> None:
    """§5.2: "Raft uses randomized election timeouts to ensure that split votes are rare
    ... election timeouts are chosen randomly from a fixed interval (e.g., 150-300ms)."
    The random source is injected, so the same seed gives the same timeout.
    """
    timeouts = [_ticks_until_campaign(new_peer(seed=seed)) for seed in range(20)]
    assert all(10 <= t < 20 for t in timeouts)
    assert len(set(timeouts)) >= 5
    again = [_ticks_until_campaign(new_peer(seed=seed)) for seed in range(20)]
    assert again == timeouts


@pytest.mark.parametrize("bug", [None, PlantedBug.UNSYNCED_VOTE])
def test_candidate_votes_for_itself_and_persists_before_asking(bug: PlantedBug | None) -> None:
    """§5.2: "To begin an election, a follower increments its current term and
    transitions to candidate state. It then votes for itself and issues RequestVote RPCs
    in parallel"; Figure 2: currentTerm and votedFor are "updated on stable storage
    before responding to RPCs". The requests wait until the vote is synced to disk.
    """
    bugs = frozenset({bug}) if bug else frozenset()
    p = new_peer(bugs=bugs)
    p.rn.campaign()
    rd = p.ready()
    assert rd.hard_state == HardState(term=2, vote=1, commit=BOOTSTRAP_INDEX)
    requests = [m for m in rd.persisted_messages if m.type is MT.VOTE]
    if bug is None:
        assert rd.must_sync
        assert sorted(m.to for m in requests) == [2, 3]
        assert sent(list(rd.messages), MT.VOTE) == []
    else:  # the harness must notice: the vote is not synced before it is used
        assert not rd.must_sync or not requests
    assert all((m.term, m.index, m.log_term) == (2, 1, 1) for m in requests)


def test_vote_is_granted_at_most_once_per_term() -> None:
    """§5.2: "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis." A repeated request from the same candidate is
    granted again (the answer may have been lost).
    """
    p = new_peer(node_id=3)
    p.step(type=MT.VOTE, frm=1, term=2, index=1, log_term=1)
    p.step(type=MT.VOTE, frm=2, term=2, index=1, log_term=1)
    p.step(type=MT.VOTE, frm=1, term=2, index=1, log_term=1)
    answers = [(m.to, m.reject) for m in sent(p.outbox(), MT.VOTE_RESP)]
    assert answers == [(1, False), (2, True), (1, False)]
    assert p.storage.hard_state.vote == 1


def test_double_vote_bug_is_caught_by_the_vote_rule() -> None:
    """The planted DOUBLE_VOTE bug breaks the rule above; this is how the rule fails."""
    p = new_peer(node_id=3, bugs=frozenset({PlantedBug.DOUBLE_VOTE}))
    p.step(type=MT.VOTE, frm=1, term=2, index=1, log_term=1)
    p.step(type=MT.VOTE, frm=2, term=2, index=1, log_term=1)
    granted = [m.to for m in sent(p.outbox(), MT.VOTE_RESP) if not m.reject]
    assert granted == [1, 2]


def test_granted_vote_is_persisted_before_the_answer_leaves() -> None:
    """Figure 2: votedFor is persistent state, "updated on stable storage before
    responding to RPCs"; a crash must not let a node vote twice in a term.
    """
    p = new_peer(node_id=2)
    p.step(type=MT.VOTE, frm=1, term=2, index=1, log_term=1)
    rd = p.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (2, 1)
    assert rd.must_sync
    assert [m.type for m in rd.persisted_messages] == [MT.VOTE_RESP]
    assert sent(list(rd.messages), MT.VOTE_RESP) == []


@pytest.mark.parametrize(
    ("size", "granted", "rejected", "role"),
    [
        (1, (), (), StateRole.LEADER),
        (3, (2,), (), StateRole.LEADER),
        (3, (2, 3), (), StateRole.LEADER),
        (3, (), (), StateRole.CANDIDATE),
        (3, (), (2,), StateRole.CANDIDATE),
        (3, (), (2, 3), StateRole.FOLLOWER),
        (5, (2, 3), (), StateRole.LEADER),
        (5, (2,), (3,), StateRole.CANDIDATE),
        (5, (2,), (3, 4, 5), StateRole.FOLLOWER),
    ],
)
def test_candidate_wins_with_votes_from_a_majority(
    size: int, granted: tuple[int, ...], rejected: tuple[int, ...], role: StateRole
) -> None:
    """§5.2: "A candidate wins an election if it receives votes from a majority of the
    servers in the full cluster for the same term." (A candidate that can no longer win
    returns to follower and waits, as etcd-raft does.)
    """
    p = new_peer(voters=tuple(range(1, size + 1)))
    p.rn.campaign()
    for v in granted:
        p.step(type=MT.VOTE_RESP, frm=v, term=2)
    for v in rejected:
        p.step(type=MT.VOTE_RESP, frm=v, term=2, reject=True)
    assert p.role is role


def test_candidate_returns_to_follower_on_append_from_leader_of_its_term() -> None:
    """§5.2: "If the leader's term (included in its RPC) is at least as large as the
    candidate's current term, then the candidate recognizes the leader as legitimate and
    returns to follower state."
    """
    p = new_peer()
    p.rn.campaign()
    p.step(type=MT.APP, frm=2, term=2, index=1, log_term=1)
    assert (p.role, p.term, p.rn.raft.lead) == (StateRole.FOLLOWER, 2, 2)


def test_new_leader_appends_an_empty_entry_of_its_term() -> None:
    """§8: "Raft handles this by having each leader commit a blank no-op entry into the
    log at the start of its term."
    """
    p = new_peer(log_terms=(1, 1))
    msgs = elect(p)
    assert p.log()[-1] == (FIRST + 2, 2)
    apps = sent(msgs, MT.APP)
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(m.entries == (Entry(term=2, index=FIRST + 2),) for m in apps)


# -- §5.3 log replication ------------------------------------------------------------------


def test_leader_appends_a_proposal_to_its_log_then_replicates_it() -> None:
    """§5.3: "The leader appends the command to its log as a new entry, then issues
    AppendEntries RPCs in parallel to each of the other servers to replicate the entry."
    """
    p = new_peer()
    elect(p)
    commit_empty_entry(p)
    last = p.rn.raft.raft_log.last_index()
    p.rn.propose(b"cmd")
    rd = p.ready()
    entry = Entry(term=2, index=last + 1, data=b"cmd")
    assert rd.entries == (entry,)
    assert rd.must_sync
    apps = sent(list(rd.messages), MT.APP)
    assert sorted(m.to for m in apps) == [2, 3]
    assert all((m.index, m.log_term, m.entries) == (last, 2, (entry,)) for m in apps)


@pytest.mark.parametrize(
    ("size", "acks", "committed"),
    [(1, (), True), (3, (), False), (3, (2,), True), (5, (2,), False), (5, (2, 4), True)],
)
def test_entry_commits_once_a_majority_stores_it(
    size: int, acks: tuple[int, ...], committed: bool
) -> None:
    """§5.3: "A log entry is committed once the leader that created the entry has
    replicated it on a majority of the servers." The leader counts itself once its own
    copy is persisted.
    """
    p = new_peer(voters=tuple(range(1, size + 1)))
    elect(p)
    if size > 1:
        commit_empty_entry(p)
    p.rn.propose(b"x")
    p.outbox()
    index = p.rn.raft.raft_log.last_index()
    for v in acks:
        ack(p, v, index)
    assert (p.rn.raft.raft_log.committed == index) is committed


def test_follower_applies_what_the_leader_says_is_committed() -> None:
    """§5.3: "The leader keeps track of the highest index it knows to be committed, and
    it includes that index in future AppendEntries RPCs ... Once a follower learns that a
    log entry is committed, it applies the entry to its local state machine."
    """
    p = new_peer(node_id=2)
    ents = (Entry(term=2, index=FIRST, data=b"a"), Entry(term=2, index=FIRST + 1, data=b"b"))
    p.step(type=MT.APP, frm=1, term=2, index=1, log_term=1, entries=ents, commit=1)
    assert p.ready().committed_entries == ()
    p.step(type=MT.APP, frm=1, term=2, index=FIRST + 1, log_term=2, commit=FIRST)
    assert p.ready().committed_entries == (ents[0],)
    p.step(type=MT.HEARTBEAT, frm=1, term=2, commit=FIRST + 1)
    assert p.ready().committed_entries == (ents[1],)


@pytest.mark.parametrize(
    ("prev_index", "prev_term", "accepted"),
    [
        (FIRST + 1, 2, True),  # matches the last entry
        (FIRST, 2, True),  # matches an earlier entry
        (1, 1, True),  # matches the snapshot
        (FIRST + 1, 3, False),  # index present, term differs
        (FIRST + 2, 2, False),  # index beyond the log
        (FIRST + 5, 3, False),
    ],
)
def test_follower_refuses_an_append_whose_previous_entry_does_not_match(
    prev_index: int, prev_term: int, accepted: bool
) -> None:
    """§5.3: "When sending an AppendEntries RPC, the leader includes the index and term of
    the entry in its log that immediately precedes the new entries. If the follower does
    not find an entry in its log with the same index and term, then it refuses the new
    entries."
    """
    p = new_peer(node_id=2, log_terms=(2, 2), term=3)
    p.outbox()
    before = p.log()
    new = (Entry(term=3, index=prev_index + 1),)
    p.step(type=MT.APP, frm=1, term=3, index=prev_index, log_term=prev_term, entries=new)
    (resp,) = sent(p.outbox(), MT.APP_RESP)
    assert resp.reject is not accepted
    if accepted:
        assert p.log()[-1] == (prev_index + 1, 3)
    else:
        assert p.log() == before
        assert resp.reject_hint <= before[-1][0]


@pytest.mark.parametrize(
    ("prev", "entries", "log"),
    [
        # Appends after a matching entry; nothing to truncate.
        ((3, 2), ((4, 3),), ((2, 2), (3, 2), (4, 3))),
        # A conflict at index 3: the existing 3 and everything after it go.
        ((2, 2), ((3, 3),), ((2, 2), (3, 3))),
        ((1, 1), ((2, 3), (3, 3)), ((2, 3), (3, 3))),
        # Entries already present are kept, so is what follows them.
        ((1, 1), ((2, 2),), ((2, 2), (3, 2))),
    ],
)
def test_follower_deletes_a_conflicting_suffix_and_appends_new_entries(
    prev: tuple[int, int], entries: tuple[tuple[int, int], ...], log: tuple[tuple[int, int], ...]
) -> None:
    """§5.3 (Figure 2, AppendEntries receiver 3 and 4): "If an existing entry conflicts
    with a new one (same index but different terms), delete the existing entry and all
    that follow it. Append any new entries not already in the log."
    """
    p = new_peer(node_id=2, log_terms=(2, 2), term=3)
    p.outbox()
    ents = tuple(Entry(term=t, index=i) for i, t in entries)
    p.step(type=MT.APP, frm=1, term=3, index=prev[0], log_term=prev[1], entries=ents)
    p.outbox()
    assert p.log() == list(log)


def test_no_truncate_bug_is_caught_by_the_conflict_rule() -> None:
    """The planted NO_TRUNCATE bug keeps a conflicting suffix; the rule above fails."""
    p = new_peer(node_id=2, log_terms=(2, 2), term=3, bugs=frozenset({PlantedBug.NO_TRUNCATE}))
    p.outbox()
    p.step(type=MT.APP, frm=1, term=3, index=2, log_term=2, entries=(Entry(term=3, index=3),))
    p.outbox()
    assert p.log() != [(2, 2), (3, 3)]


FIGURE_7 = {
    # The follower logs of Figure 7 (terms of entries 1, 2, ...); entry 1 (term 1) is the
    # bootstrap snapshot here, so each tuple lists terms from entry 2 on.
    "a": (1, 1, 4, 4, 5, 5, 6, 6),
    "b": (1, 1, 4),
    "c": (1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    "d": (1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    "e": (1, 1, 4, 4, 4, 4),
    "f": (1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
}
LEADER_7 = (1, 1, 4, 4, 5, 5, 6, 6, 6)


@pytest.mark.parametrize("case", sorted(FIGURE_7))
def test_leader_brings_every_follower_log_in_line(case: str) -> None:
    """§5.3, Figure 7: "the leader handles inconsistencies by forcing the followers' logs
    to duplicate its own ... the leader must find the latest log entry where the two logs
    agree, delete any entries in the follower's log after that point, and send the
    follower all of the leader's entries after that point."

    Node 1 has the leader's log and node 3 a copy of it (so that 1 can win even against
    d, whose last term is higher); node 2 has the follower log of the case.
    """
    env = cluster(3)
    for node_id, terms in ((1, LEADER_7), (2, FIGURE_7[case]), (3, LEADER_7)):
        node = env.nodes[node_id]
        node.storage.append([Entry(term=t, index=FIRST + i) for i, t in enumerate(terms)])
        node.storage.set_hard_state(HardState(term=8, commit=BOOTSTRAP_INDEX))
        env.restart(node_id)
    env.act(1, lambda raw: raw.campaign())
    env.stabilize(env.ids())
    leader = env.nodes[1]
    assert leader.raw.raft.role is StateRole.LEADER
    want = leader.storage.entries(FIRST, leader.storage.last_index() + 1)
    got = env.nodes[2].storage.entries(FIRST, env.nodes[2].storage.last_index() + 1)
    assert got == want
    assert env.nodes[2].raw.raft.raft_log.committed == leader.storage.last_index()


def test_rejection_hint_skips_a_whole_conflicting_term() -> None:
    """§5.3: "the follower can include the term of the conflicting entry and the first
    index it stores for that term. With this information, the leader can decrement
    nextIndex to bypass all of the conflicting entries in that term; one AppendEntries
    RPC will be required for each term with conflicting entries, rather than one RPC per
    entry." A follower with many stale entries of one term costs one rejection.
    """
    env = cluster(3)
    leader_log = (1, 2, 2, 2, 2, 2, 2, 2, 2, 2)
    stale_log = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    for node_id, terms in ((1, leader_log), (2, stale_log), (3, leader_log)):
        node = env.nodes[node_id]
        node.storage.append([Entry(term=t, index=FIRST + i) for i, t in enumerate(terms)])
        node.storage.set_hard_state(HardState(term=2, commit=BOOTSTRAP_INDEX))
        env.restart(node_id)
    env.act(1, lambda raw: raw.campaign())
    rejections = 0
    for _ in range(50):
        for node_id in env.ids():
            if env.nodes[node_id].raw.has_ready():
                env.process_ready(node_id)
        msgs = env.take_messages(None, None)
        if not msgs:
            break
        rejections += sum(1 for m in msgs if m.type is MT.APP_RESP and m.reject and m.frm == 2)
        env.deliver(msgs)
    assert rejections == 1
    assert env.nodes[2].storage.last_index() == env.nodes[1].storage.last_index()


# -- §5.4 safety -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_term", "last_index", "granted"),
    [
        (2, FIRST + 2, True),  # same last term, longer log
        (2, FIRST + 1, True),  # same last term, same length
        (2, FIRST, False),  # same last term, shorter log
        (1, FIRST + 9, False),  # lower last term, however long
        (3, FIRST, True),  # higher last term, however short
    ],
)
def test_vote_refused_to_a_candidate_whose_log_is_less_up_to_date(
    last_term: int, last_index: int, granted: bool
) -> None:
    """§5.4.1: "The voter denies its vote if its own log is more up-to-date than that of
    the candidate ... If the logs have last entries with different terms, then the log
    with the later term is more up-to-date. If the logs end with the same term, then
    whichever log is longer is more up-to-date."
    """
    p = new_peer(node_id=3, log_terms=(1, 2))
    p.step(type=MT.VOTE, frm=1, term=5, index=last_index, log_term=last_term)
    (resp,) = sent(p.outbox(), MT.VOTE_RESP)
    assert resp.reject is not granted


@pytest.mark.parametrize("bug", [None, PlantedBug.COMMIT_OLD_TERM])
def test_leader_never_commits_an_entry_of_an_earlier_term_by_counting(
    bug: PlantedBug | None,
) -> None:
    """§5.4.2: "Raft never commits log entries from previous terms by counting replicas.
    Only log entries from the leader's current term are committed by counting replicas;
    once an entry from the current term has been committed in this way, then all prior
    entries are committed indirectly."
    """
    bugs = frozenset({bug}) if bug else frozenset()
    p = new_peer(log_terms=(1, 2), term=2, bugs=bugs)  # entries 2 (term 1), 3 (term 2)
    elect(p)  # term 3, appends 4 (term 3)
    old = FIRST + 1
    ack(p, 2, old)  # a majority (1 and 2) stores the term-2 entry
    committed = p.rn.raft.raft_log.committed
    if bug is None:
        assert committed == BOOTSTRAP_INDEX
        ack(p, 2, old + 1)  # now the term-3 entry: everything up to it commits
        assert p.rn.raft.raft_log.committed == old + 1
    else:  # the harness must notice: an old-term entry was committed by counting
        assert committed == old


# -- §6 membership changes (thesis chapter 4) ------------------------------------------


def test_only_one_membership_change_may_be_pending() -> None:
    """Thesis §4.1: "a leader ... must not begin a new configuration change until the
    previous one has been committed" (here, applied); a second change proposed meanwhile
    is appended as an empty normal entry.
    """
    p = new_peer()
    elect(p)
    commit_empty_entry(p)
    add4 = ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, 4),))
    add5 = ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, 5),))
    p.rn.propose_conf_change(add4)
    p.rn.propose_conf_change(add5)
    entries = p.ready().entries
    assert [e.type for e in entries] == [EntryType.CONF_CHANGE, EntryType.NORMAL]
    assert entries[1].data == b""


def test_new_leader_refuses_membership_changes_until_its_term_commits() -> None:
    """Thesis §4.1 (and Ongaro's raft-dev correction, 2015): a leader may not start a
    membership change until it has committed an entry of its own term.
    """
    p = new_peer()
    elect(p)
    cc = ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_NODE, 4),))
    p.rn.propose_conf_change(cc)
    assert [e.type for e in p.ready().entries] == [EntryType.NORMAL]
    commit_empty_entry(p)
    p.rn.propose_conf_change(cc)
    assert [e.type for e in p.ready().entries] == [EntryType.CONF_CHANGE]


def test_joint_configuration_needs_a_majority_of_both_halves() -> None:
    """Thesis §4.3: in C_old,new "agreement (for elections and entry commitment) requires
    separate majorities from both the old and new configurations."
    """
    p = new_peer(voters=(1, 2, 3), voters_outgoing=(1, 4, 5))
    p.rn.campaign()
    p.step(type=MT.VOTE_RESP, frm=2, term=2)
    p.step(type=MT.VOTE_RESP, frm=3, term=2)
    assert p.role is StateRole.CANDIDATE  # a majority of (1 2 3) only
    p.step(type=MT.VOTE_RESP, frm=4, term=2)
    assert p.role is StateRole.LEADER
    p.outbox()
    last = p.rn.raft.raft_log.last_index()
    ack(p, 2, last)
    ack(p, 3, last)
    assert p.rn.raft.raft_log.committed < last
    ack(p, 5, last)
    assert p.rn.raft.raft_log.committed == last


def test_learner_never_campaigns_and_is_never_counted() -> None:
    """Thesis §4.2.1: learners ("non-voting members") receive the log but are not counted
    in majorities, and so must not start elections.
    """
    learner = new_peer(node_id=3, voters=(1, 2), learners=(3,))
    for _ in range(100):
        learner.rn.tick()
    assert learner.role is StateRole.FOLLOWER
    assert learner.outbox() == []
    leader = new_peer(voters=(1, 2), learners=(3,))
    msgs = elect(leader)
    assert sorted(m.to for m in sent(msgs, MT.APP)) == [2, 3]
    ack(leader, 3, leader.rn.raft.raft_log.last_index())
    assert leader.rn.raft.raft_log.committed == BOOTSTRAP_INDEX


# -- thesis §6.2 check-quorum and §9.6 pre-vote ----------------------------------------


def test_leader_without_a_quorum_steps_down() -> None:
    """Thesis §6.2: "a leader steps down if an election timeout elapses without a
    successful round of heartbeats to a majority of its cluster."
    """
    p = new_peer(check_quorum=True, election_tick=10)
    elect(p)
    for _ in range(10):
        p.step(type=MT.HEARTBEAT_RESP, frm=2, term=p.term)
        p.rn.tick()
    assert p.role is StateRole.LEADER  # 2 answered: 1 and 2 are a quorum
    for _ in range(9):
        p.rn.tick()
    p.rn.tick()  # a whole election timeout without an answer
    assert p.role is StateRole.FOLLOWER


def test_follower_that_heard_from_a_leader_ignores_vote_requests() -> None:
    """Thesis §4.2.3: "if a server receives a RequestVote request within the minimum
    election timeout of hearing from a current leader, it does not update its term or
    grant its vote."
    """
    p = new_peer(node_id=2, check_quorum=True)
    p.step(type=MT.HEARTBEAT, frm=1, term=2)
    p.outbox()
    p.step(type=MT.VOTE, frm=3, term=3, index=9, log_term=9)
    assert p.term == 2
    assert sent(p.outbox(), MT.VOTE_RESP) == []


def test_pre_vote_does_not_change_term_or_vote() -> None:
    """Thesis §9.6: "a candidate would first ask other servers whether its log was
    up-to-date enough to get their vote. Only if the candidate believed it could get
    votes from a majority of the cluster would it increment its term and start a normal
    election." A refused pre-candidate leaves every term as it was.
    """
    p = new_peer(pre_vote=True)
    p.rn.campaign()
    rd = p.ready()
    assert p.role is StateRole.PRE_CANDIDATE
    assert p.term == 1 and rd.hard_state is None
    requests = [m for m in (*rd.messages, *rd.persisted_messages) if m.type is MT.PRE_VOTE]
    assert [(m.to, m.term) for m in requests] == [(2, 2), (3, 2)]
    voter = new_peer(node_id=2, log_terms=(1,), pre_vote=True)
    voter.step(type=MT.PRE_VOTE, frm=1, term=2, index=1, log_term=1)
    (resp,) = sent(voter.outbox(), MT.PRE_VOTE_RESP)
    assert resp.reject and voter.term == 1 and voter.storage.hard_state.vote == 0
    p.step(type=MT.PRE_VOTE_RESP, frm=2, term=resp.term, reject=True)
    p.step(type=MT.PRE_VOTE_RESP, frm=3, term=resp.term, reject=True)
    assert (p.role, p.term) == (StateRole.FOLLOWER, 1)


# -- thesis §3.10 leadership transfer --------------------------------------------------


def test_leadership_transfer_sends_timeout_now_once_the_target_is_up_to_date() -> None:
    """Thesis §3.10: "the prior leader sends its log entries to the target server ...
    once the target server is caught up, the prior leader sends it a TimeoutNow request";
    during the transfer the leader stops accepting client requests.
    """
    p = new_peer()
    elect(p)
    last = p.rn.raft.raft_log.last_index()
    ack(p, 3, last)
    p.rn.transfer_leader(2)
    assert sent(p.outbox(), MT.TIMEOUT_NOW) == []
    with pytest.raises(ProposalDroppedError):
        p.rn.propose(b"x")
    msgs = ack(p, 2, last)
    assert [m.to for m in sent(msgs, MT.TIMEOUT_NOW)] == [2]


def test_leadership_transfer_is_aborted_after_an_election_timeout() -> None:
    """Thesis §3.10: "If the transfer does not complete within about one election
    timeout, the prior leader aborts the transfer and resumes accepting client requests."
    """
    p = new_peer(election_tick=10)
    elect(p)
    p.rn.transfer_leader(2)
    for _ in range(9):
        p.rn.tick()
    with pytest.raises(ProposalDroppedError):
        p.rn.propose(b"x")
    p.rn.tick()
    p.rn.propose(b"x")
    assert p.role is StateRole.LEADER


def test_target_of_a_transfer_campaigns_at_once_past_leases() -> None:
    """Thesis §3.10: on TimeoutNow the target "starts a new election"; its requests are
    marked so that voters that still hear from the old leader grant them anyway.
    """
    target = new_peer(node_id=2, pre_vote=True, check_quorum=True)
    target.step(type=MT.TIMEOUT_NOW, frm=1, term=2)
    assert (target.role, target.term) == (StateRole.CANDIDATE, 3)
    (request, _) = sent(target.outbox(), MT.VOTE)
    voter = new_peer(node_id=3, pre_vote=True, check_quorum=True)
    voter.step(type=MT.HEARTBEAT, frm=1, term=2)
    voter.outbox()
    voter.rn.step(replace(request, to=3))
    (resp,) = sent(voter.outbox(), MT.VOTE_RESP)
    assert not resp.reject


# -- thesis §6.4 linearizable reads ----------------------------------------------------


def test_read_index_is_served_after_a_heartbeat_round_with_a_majority() -> None:
    """Thesis §6.4: the leader "records its current commit index in a local variable
    readIndex", then "sends a new round of heartbeats ... Once it receives
    acknowledgments from a majority of the cluster, the leader knows that it was still
    the leader at the time it sent the heartbeats", and the read may proceed.
    """
    p = new_peer(voters=(1, 2, 3, 4, 5))
    elect(p)
    commit_empty_entry(p)
    commit = p.rn.raft.raft_log.committed
    p.rn.read_index(b"r")
    beats = sent(p.outbox(), MT.HEARTBEAT)
    assert sorted(m.to for m in beats) == [2, 3, 4, 5]
    assert all(m.context == b"r" for m in beats)
    p.step(type=MT.HEARTBEAT_RESP, frm=2, term=p.term, context=b"r")
    assert p.ready().read_states == ()
    p.step(type=MT.HEARTBEAT_RESP, frm=3, term=p.term, context=b"r")
    (rs,) = p.ready().read_states
    assert (rs.index, rs.request_ctx) == (commit, b"r")


def test_read_index_waits_until_the_leader_commits_in_its_term() -> None:
    """Thesis §6.4: "If the leader has not yet marked an entry from its current term
    committed, it waits until it has done so."
    """
    p = new_peer()
    elect(p)
    p.rn.read_index(b"r")
    assert sent(p.outbox(), MT.HEARTBEAT) == []
    commit_empty_entry(p)
    p.step(type=MT.HEARTBEAT_RESP, frm=2, term=p.term, context=b"r")
    (rs,) = p.ready().read_states
    assert rs.index == p.rn.raft.raft_log.committed


def _lease_leader(**config: object) -> Peer:
    p = new_peer(check_quorum=True, read_only_option=ReadOnlyOption.LEASE_BASED, **config)
    for _ in range(10):  # a node that just started may not be elected (it might hold a lease)
        p.rn.tick()
    elect(p)
    commit_empty_entry(p)
    p.rn.tick()
    heartbeat = sent(p.outbox(), MT.HEARTBEAT)[0]
    for v in (2, 3):
        p.step(type=MT.HEARTBEAT_RESP, frm=v, term=p.term, lease_tick=heartbeat.lease_tick)
    p.outbox()
    return p


def test_lease_read_is_served_without_messages_while_the_lease_holds() -> None:
    """Thesis §6.4.1: "the leader would use the normal heartbeat mechanism to maintain a
    lease ... it would then reply to read-only queries without any additional
    communication", the lease being shorter than the election timeout by the clock
    drift allowed.
    """
    p = _lease_leader(election_tick=10, max_clock_drift_ticks=2)
    p.rn.read_index(b"r")
    rd = p.ready()
    assert [rs.request_ctx for rs in rd.read_states] == [b"r"]
    assert sent([*rd.messages, *rd.persisted_messages], MT.HEARTBEAT) == []


def test_lease_read_falls_back_to_read_index_once_the_lease_expires() -> None:
    """Thesis §6.4.1: the lease lasts "election timeout / clock drift bound"; after it, a
    leader that heard nothing more must not answer from its lease.
    """
    p = _lease_leader(election_tick=10, max_clock_drift_ticks=2)
    for _ in range(7):
        p.rn.tick()
    assert p.rn.raft.lease_valid()
    p.rn.tick()
    assert not p.rn.raft.lease_valid()
    p.rn.read_index(b"r")
    rd = p.ready()
    assert rd.read_states == ()
    confirming = [m.to for m in sent(list(rd.messages), MT.HEARTBEAT) if m.context == b"r"]
    assert confirming == [2, 3]


@pytest.mark.parametrize("bug", [None, PlantedBug.STALE_LEASE_READ])
def test_deposed_or_expired_leader_does_not_serve_from_its_lease(bug: PlantedBug | None) -> None:
    """Thesis §6.4.1: a leader whose lease has lapsed may have been replaced; the planted
    STALE_LEASE_READ bug ignores the lapse, and this check catches it.
    """
    bugs = frozenset({bug}) if bug else frozenset()
    p = _lease_leader(election_tick=10, max_clock_drift_ticks=2, bugs=bugs)
    for _ in range(9):
        p.rn.tick()
    p.rn.read_index(b"r")
    served = [rs.request_ctx for rs in p.ready().read_states]
    assert served == ([] if bug is None else [b"r"])
