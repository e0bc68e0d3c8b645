"""The Raft state machine: elections, replication, reads and membership, with no I/O.

Theory of operation. A `Raft` changes only through `step(message)` and `tick()`. It
never sends, writes or sleeps: outgoing messages are appended to `msgs` (may go out at
once) or `msgs_after_persist` (must wait until the entries and hard state of the same
`Ready` are durable), new entries go to the log's unstable tail, and the `RawNode` above
turns all of that into a `Ready`. Time is counted in ticks; randomness comes from an
injected `random.Random`, so one seed gives one run.

`step` first reconciles terms (Raft paper §5.1: a higher term turns us into a follower, a
lower one is answered or ignored), then dispatches to the handler of the node's role.
The leader counts its own log toward a quorum only once `advance` reports the entries
persisted, so a commit never rests on an entry that only lives in a leader's memory.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from cairn.raft.confchange import Changer, restore
from cairn.raft.config import Config, PlantedBug
from cairn.raft.errors import (
    CompactedError,
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from cairn.raft.leader import serve_read_index, step_leader
from cairn.raft.log import RaftLog
from cairn.raft.progress import Progress, ProgressState
from cairn.raft.quorum import VoteResult
from cairn.raft.read_only import ReadOnly
from cairn.raft.storage import Storage
from cairn.raft.tracker import ProgressTracker, TrackerConfig
from cairn.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadOnlyOption,
    ReadState,
    Snapshot,
    SoftState,
    StateRole,
    encode_conf_change,
    vote_resp_type,
)

CAMPAIGN_PRE_ELECTION = b"CampaignPreElection"
CAMPAIGN_ELECTION = b"CampaignElection"
CAMPAIGN_TRANSFER = b"CampaignTransfer"

MT = MessageType
_PERSIST_FIRST = frozenset({MT.VOTE, MT.VOTE_RESP, MT.APP_RESP})
"""Messages that promise durable state: a vote (ours or granted) or entries we hold."""


class Raft:
    """One node's Raft state. Invariants: `raft_log.applied <= raft_log.committed`;
    `lead == id` exactly when `role is LEADER`; `vote` is persisted before any message
    that depends on it leaves (`msgs_after_persist`).
    """

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        config.validate()
        self.config = config
        self.id = config.id
        self.rng = rng
        self.raft_log = RaftLog(storage, config.max_committed_size_per_ready)
        self.prs = ProgressTracker(max_inflight=config.max_inflight_msgs)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = StateRole.FOLLOWER
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.tick_count = 0
        self._committed_in_term = -1  # the last term seen to have a committed entry
        self.lead_transferee = NONE
        self.lease_revoked = False
        self.lease_acks: dict[NodeId, int] = {}
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.is_learner = False

        hs, cs = storage.initial_state()
        self._restore_conf_state(cs)
        if not hs.is_empty():
            self._load_hard_state(hs)
        if config.applied > 0:
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    # -- small queries -------------------------------------------------------------

    def soft_state(self) -> SoftState:
        """The volatile state the application may want to watch."""
        return SoftState(lead=self.lead, role=self.role)

    def hard_state(self) -> HardState:
        """The state that must be persisted."""
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def promotable(self) -> bool:
        """Whether this node may campaign: a voter with no snapshot waiting to be applied."""
        pr = self.prs.progress.get(self.id)
        return pr is not None and not pr.is_learner and self.raft_log.unstable.snapshot is None

    def committed_entry_in_current_term(self) -> bool:
        """Whether this leader has committed an entry of its own term (thesis §6.4).

        Asked on every lease read; once true it stays true for the term (the commit index
        only grows, and committed entries never change), so the answer is remembered."""
        if self._committed_in_term == self.term:
            return True
        if self.raft_log.term(self.raft_log.committed) != self.term:
            return False
        self._committed_in_term = self.term
        return True

    def lease_read_index(self) -> int | None:
        """The index a linearizable read may be served at with no round of messages, or None
        when it needs a ReadIndex round: a leader that has committed an entry of its term and
        holds its lease (or is the only voter) answers from its commit index (thesis §6.4)."""
        if self.role is not StateRole.LEADER or not self.committed_entry_in_current_term():
            return None
        if self.prs.is_singleton() or (
            self.config.read_only_option is ReadOnlyOption.LEASE_BASED and self.lease_valid()
        ):
            return self.raft_log.committed
        return None

    def in_lease(self) -> bool:
        """Whether this follower may still believe in a leader and so refuse votes.

        Check-quorum only: a node that heard from a leader within the election timeout
        ignores vote requests, which is what makes leader leases safe (thesis §6.4.1). With
        lease reads on, a node that just (re)started counts as having heard from one: it may
        have, before a crash, and the lease it backed must still hold.
        """
        if not self.config.check_quorum:
            return False
        just_started = (
            self.config.read_only_option is ReadOnlyOption.LEASE_BASED
            and self.tick_count < self.config.election_tick
        )
        recent = self.lead != NONE or just_started
        return recent and self.election_elapsed < self.config.election_tick

    def lease_valid(self) -> bool:
        """Whether this leader's lease still rules out any other leader (thesis §6.4.1).

        The lease starts when the leader sent the newest heartbeat that a quorum answered;
        no voter that answered grants a vote for `election_tick` of its ticks after that,
        and we subtract the clock drift allowance.
        """
        if self.role is not StateRole.LEADER or self.lease_revoked or self.lead_transferee:
            return False
        if self.config.has_bug(PlantedBug.STALE_LEASE_READ):
            return True
        start = self.prs.config.voters.committed_index(self._lease_ack_of)
        lease = self.config.election_tick - self.config.max_clock_drift_ticks
        return self.tick_count < start + lease

    def _lease_ack_of(self, node_id: NodeId) -> int | None:
        if node_id == self.id:
            return self.tick_count
        return self.lease_acks.get(node_id)

    # -- sending ----------------------------------------------------------------------

    def send(self, m: Message) -> None:
        """Queue a message; those that promise persisted state wait for the persist."""
        if m.frm == NONE:
            m = _with(m, frm=self.id)
        if m.type in (MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP):
            if m.term == 0:
                raise AssertionError(f"term must be set for {m.type.value}")
        elif m.type not in (MT.PROP, MT.READ_INDEX):
            m = _with(m, term=self.term)
        if m.type in _PERSIST_FIRST and not self._unsynced_vote_bug(m):
            self.msgs_after_persist.append(m)
        else:
            self.msgs.append(m)

    def _unsynced_vote_bug(self, m: Message) -> bool:
        return self.config.has_bug(PlantedBug.UNSYNCED_VOTE) and m.type in (MT.VOTE, MT.VOTE_RESP)

    def send_append(self, to: NodeId, send_if_empty: bool = True) -> bool:
        """Send entries (or a snapshot) to a follower; false if nothing was sent."""
        pr = self.prs.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next_index - 1
        log = self.raft_log
        ents: list[Entry] = []
        try:
            if prev_index < log.first_index() - 1:
                raise CompactedError(f"{prev_index} is compacted")
            prev_term = log.term(prev_index)
            ents = log.entries(pr.next_index, self.config.max_size_per_msg)
        except (CompactedError, UnavailableError):
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.send(
            Message(
                type=MT.APP,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(ents),
                commit=log.committed,
            )
        )
        pr.update_on_entries_send(len(ents), ents[-1].index if ents else prev_index)
        return True

    def _send_snapshot(self, to: NodeId, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.is_empty():
            raise AssertionError("need a non-empty snapshot to catch up a follower")
        self.send(Message(type=MT.SNAP, to=to, snapshot=snap))
        pr.become_snapshot(snap.metadata.index)
        return True

    def send_heartbeat(self, to: NodeId, ctx: bytes) -> None:
        """Send a heartbeat; its commit never exceeds what the follower is known to hold."""
        commit = min(self.prs.progress[to].match, self.raft_log.committed)
        self.send(
            Message(
                type=MT.HEARTBEAT, to=to, commit=commit, context=ctx, lease_tick=self.tick_count
            )
        )

    def _peers(self) -> list[NodeId]:
        return [i for i in self.prs.ids() if i != self.id]

    def bcast_append(self) -> None:
        """Send entries to every follower that may receive them now."""
        for i in self._peers():
            self.send_append(i)

    def bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        """Heartbeat every follower, carrying the newest pending read context if any."""
        if ctx is None:
            ctx = self.read_only.last_pending_context() or b""
        for i in self._peers():
            self.send_heartbeat(i, ctx)

    # -- role transitions ---------------------------------------------------------------

    def reset(self, term: int) -> None:
        """Enter `term` (forgetting the vote if it is new) with fresh timers and progress."""
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.lead_transferee = NONE
        self.lease_revoked = False
        self.lease_acks = {}
        self.prs.reset_votes()
        last = self.raft_log.last_index()
        for node_id, pr in self.prs.progress.items():
            learner = pr.is_learner
            pr.match, pr.next_index = 0, last + 1
            pr.reset_state(ProgressState.PROBE)
            pr.is_learner = learner
            pr.recent_active = False
            if node_id == self.id:
                pr.match = self.last_persisted_index()
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_read_index = []

    def last_persisted_index(self) -> int:
        """The last index known to be on stable storage."""
        unstable = self.raft_log.unstable
        if unstable.snapshot is not None:
            return unstable.snapshot.metadata.index - 1
        return unstable.offset - 1

    def reset_randomized_election_timeout(self) -> None:
        """Draw the next election timeout from [election_tick, 2 * election_tick)."""
        et = self.config.election_tick
        self.randomized_election_timeout = et + self.rng.randrange(et)

    def become_follower(self, term: int, lead: NodeId) -> None:
        """Follow `lead` (or nobody) in `term`."""
        self.reset(term)
        self.lead = lead
        self.role = StateRole.FOLLOWER

    def become_pre_candidate(self) -> None:
        """Ask for pre-votes without changing term or vote (thesis §9.6)."""
        if self.role is StateRole.LEADER:
            raise AssertionError("invalid transition leader -> pre-candidate")
        self.prs.reset_votes()
        self.lead = NONE
        self.role = StateRole.PRE_CANDIDATE

    def become_candidate(self) -> None:
        """Start a new term, voting for ourselves."""
        if self.role is StateRole.LEADER:
            raise AssertionError("invalid transition leader -> candidate")
        self.reset(self.term + 1)
        self.vote = self.id
        self.role = StateRole.CANDIDATE

    def become_leader(self) -> None:
        """Take the lead and append an empty entry of our term (paper §8, thesis §6.4)."""
        if self.role is StateRole.FOLLOWER:
            raise AssertionError("invalid transition follower -> leader")
        self.reset(self.term)
        self.lead = self.id
        self.role = StateRole.LEADER
        pr = self.prs.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True
        self.append_entries([Entry(term=0, index=0)])
        # No membership change until an entry of this term commits: the fix to
        # single-server changes (Ongaro, raft-dev 2015).
        self.pending_conf_index = self.raft_log.last_index()

    # -- elections --------------------------------------------------------------------

    def hup(self, transfer: bool = False) -> None:
        """Start an election (a pre-vote first when enabled) unless we cannot."""
        if self.role is StateRole.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return
        if transfer:
            self.campaign(CAMPAIGN_TRANSFER)
        elif self.config.pre_vote:
            self.campaign(CAMPAIGN_PRE_ELECTION)
        else:
            self.campaign(CAMPAIGN_ELECTION)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.applied >= log.committed:
            return False
        try:
            ents = log.slice(log.applied + 1, log.committed + 1, None)
        except CompactedError:
            return False
        return any(e.type is EntryType.CONF_CHANGE for e in ents)

    def campaign(self, kind: bytes) -> None:
        """Become (pre-)candidate and request votes from every voter."""
        if kind == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = MT.VOTE, self.term
        ids = self.prs.config.voters.ids()
        for node_id in ids:
            if node_id == self.id:
                self.poll(self.id, vote_resp_type(vote_type), granted=True)
                if self.role not in (StateRole.PRE_CANDIDATE, StateRole.CANDIDATE):
                    return  # single voter: already won
        for node_id in ids:
            if node_id == self.id:
                continue
            ctx = CAMPAIGN_TRANSFER if kind == CAMPAIGN_TRANSFER else b""
            self.send(
                Message(
                    type=vote_type,
                    to=node_id,
                    term=term,
                    index=self.raft_log.last_index(),
                    log_term=self.raft_log.last_term(),
                    context=ctx,
                )
            )

    def poll(self, node_id: NodeId, t: MessageType, granted: bool) -> VoteResult:
        """Record a vote and act on the result: lead, run the real election, or give up."""
        self.prs.record_vote(node_id, granted)
        _, _, result = self.prs.tally_votes()
        if result is VoteResult.WON:
            if self.role is StateRole.PRE_CANDIDATE:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
                self.bcast_append()
        elif result is VoteResult.LOST:
            self.become_follower(self.term, NONE)
        return result

    # -- ticks --------------------------------------------------------------------------

    def advance_lease_clock(self, ticks: int) -> None:
        """Let `ticks` pass for the lease only: the election and heartbeat timers stand
        still (see `RawNode.advance_lease_clock`)."""
        if ticks < 0:
            raise ValueError(f"the lease clock cannot go back ({ticks} ticks)")
        self.tick_count += ticks

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.tick_count += 1
        if self.role is StateRole.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(type=MT.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                self.step(Message(type=MT.CHECK_QUORUM, frm=self.id))
            if self.role is StateRole.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.role is not StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.step(Message(type=MT.BEAT, frm=self.id))

    # -- step: terms first, then the role's handler ------------------------------------

    def step(self, m: Message) -> None:
        """Handle one message (Raft paper §5.1 for terms, then by role)."""
        if m.term > self.term:
            if not self._accept_higher_term(m):
                return
        elif 0 < m.term < self.term:
            self._answer_stale(m)
            return
        handler = _COMMON_HANDLERS.get(m.type)
        if handler is not None:
            handler(self, m)
            return
        match self.role:
            case StateRole.LEADER:
                step_leader(self, m)
            case StateRole.CANDIDATE | StateRole.PRE_CANDIDATE:
                self.step_candidate(m)
            case StateRole.FOLLOWER:
                self.step_follower(m)

    def _accept_higher_term(self, m: Message) -> bool:
        """Move to a higher term unless the message is a vote we must ignore or a pre-vote."""
        if m.type in (MT.VOTE, MT.PRE_VOTE):
            forced = m.context == CAMPAIGN_TRANSFER
            if not forced and self.in_lease():
                return False
        if m.type is MT.PRE_VOTE or (m.type is MT.PRE_VOTE_RESP and not m.reject):
            # A pre-vote never changes terms; a granted pre-vote answer carries the
            # future term we asked for.
            return True
        if m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self.become_follower(m.term, m.frm)
        else:
            self.become_follower(m.term, NONE)
        return True

    def _answer_stale(self, m: Message) -> None:
        """Tell a stale leader or pre-candidate about our term so it steps down."""
        if (self.config.check_quorum or self.config.pre_vote) and m.type in (
            MT.HEARTBEAT,
            MT.APP,
        ):
            self.send(Message(type=MT.APP_RESP, to=m.frm))
        elif m.type is MT.PRE_VOTE:
            self.send(Message(type=MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))

    def _step_hup(self, m: Message) -> None:
        self.hup(transfer=m.context == CAMPAIGN_TRANSFER)

    def _step_vote(self, m: Message) -> None:
        """Grant a (pre-)vote to an up-to-date candidate we can vote for (§5.2, §5.4.1)."""
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MT.PRE_VOTE and m.term > self.term)
            or (self.config.has_bug(PlantedBug.DOUBLE_VOTE) and m.type is MT.VOTE)
        )
        resp = vote_resp_type(m.type)
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            self.send(Message(type=resp, to=m.frm, term=m.term))
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(type=resp, to=m.frm, term=self.term, reject=True))

    # -- leader -------------------------------------------------------------------------

    def respond_read_index(self, m: Message, index: int) -> None:
        """Hand a confirmed read to the local application or back to the asking follower."""
        if m.frm in (NONE, self.id):
            self.read_states.append(ReadState(index=index, request_ctx=m.context))
        else:
            self.send(Message(type=MT.READ_INDEX_RESP, to=m.frm, index=index, context=m.context))

    def release_pending_read_index(self) -> None:
        """Serve reads that waited for this leader's first commit."""
        if not self.committed_entry_in_current_term():
            return
        pending, self.pending_read_index = self.pending_read_index, []
        for m in pending:
            serve_read_index(self, m)

    def send_timeout_now(self, to: NodeId) -> None:
        """Tell the transferee to campaign now; our lease ends here for good."""
        self.lease_revoked = True
        self.send(Message(type=MT.TIMEOUT_NOW, to=to))

    def abort_leader_transfer(self) -> None:
        """Give up a leadership transfer."""
        self.lead_transferee = NONE

    def append_entries(self, entries: list[Entry]) -> bool:
        """Give entries our term and the next indexes and append them; false if over limit."""
        last = self.raft_log.last_index()
        size = sum(len(e.data) for e in entries)
        limit = self.config.max_uncommitted_entries_size
        if limit and self.uncommitted_size > 0 and self.uncommitted_size + size > limit:
            return False
        self.uncommitted_size += size
        stamped = [
            Entry(term=self.term, index=last + 1 + i, type=e.type, data=e.data)
            for i, e in enumerate(entries)
        ]
        self.raft_log.append(stamped)
        return True

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum holds, if of our term (§5.4.2)."""
        any_term = self.config.has_bug(PlantedBug.COMMIT_OLD_TERM)
        committed = self.raft_log.maybe_commit(self.prs.committed(), self.term, any_term)
        if committed:
            self.release_pending_read_index()
        return committed

    def on_persisted(self, index: int) -> None:
        """Entries up to `index` are durable here: the leader may now count itself."""
        if self.role is not StateRole.LEADER:
            return
        pr = self.prs.progress.get(self.id)
        if pr is not None and pr.maybe_update(index) and self.maybe_commit():
            self.bcast_append()

    def reduce_uncommitted_size(self, entries: Sequence[Entry]) -> None:
        """Forget the size of entries that are now applied."""
        if self.role is StateRole.LEADER:
            size = sum(len(e.data) for e in entries)
            self.uncommitted_size = max(0, self.uncommitted_size - size)

    # -- candidate and follower ---------------------------------------------------------

    def step_candidate(self, m: Message) -> None:
        """Handle a message as (pre-)candidate."""
        my_resp = MT.PRE_VOTE_RESP if self.role is StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        match m.type:
            case MT.PROP | MT.READ_INDEX:
                raise ProposalDroppedError("no leader while campaigning")
            case MT.APP:
                self.become_follower(m.term, m.frm)
                self.handle_append(m)
            case MT.HEARTBEAT:
                self.become_follower(m.term, m.frm)
                self.handle_heartbeat(m)
            case MT.SNAP:
                self.become_follower(m.term, m.frm)
                self.handle_snapshot(m)
            case t if t is my_resp:
                self.poll(m.frm, t, not m.reject)
            case _:
                pass

    def step_follower(self, m: Message) -> None:
        """Handle a message as follower."""
        match m.type:
            case MT.PROP:
                self._forward_to_leader(m, "proposal")
            case MT.APP:
                self.election_elapsed = 0
                self.lead = m.frm
                self.handle_append(m)
            case MT.HEARTBEAT:
                self.election_elapsed = 0
                self.lead = m.frm
                self.handle_heartbeat(m)
            case MT.SNAP:
                self.election_elapsed = 0
                self.lead = m.frm
                self.handle_snapshot(m)
            case MT.TRANSFER_LEADER:
                if self.lead != NONE:
                    self.send(_with(m, to=self.lead, term=0))
            case MT.TIMEOUT_NOW:
                self.hup(transfer=True)
            case MT.READ_INDEX:
                self._forward_to_leader(m, "read")
            case MT.READ_INDEX_RESP:
                self.read_states.append(ReadState(index=m.index, request_ctx=m.context))
            case _:
                pass

    def _forward_to_leader(self, m: Message, what: str) -> None:
        if self.lead == NONE:
            raise ProposalDroppedError(f"no leader to forward the {what} to")
        if self.config.disable_proposal_forwarding and m.type is MT.PROP:
            raise ProposalDroppedError("proposal forwarding is disabled")
        self.send(_with(m, to=self.lead, term=0))

    def handle_append(self, m: Message) -> None:
        """Append the leader's entries if our log matches at (index, log_term) (§5.3)."""
        log = self.raft_log
        if m.index < log.committed:
            self.send(Message(type=MT.APP_RESP, to=m.frm, index=log.committed))
            return
        truncate = not self.config.has_bug(PlantedBug.NO_TRUNCATE)
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries, truncate)
        if last_new is not None:
            self.send(Message(type=MT.APP_RESP, to=m.frm, index=last_new))
            return
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                type=MT.APP_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                hint_term=hint_term,
            )
        )

    def handle_heartbeat(self, m: Message) -> None:
        """Learn the commit index and answer (echoing the read context and lease tick)."""
        self.raft_log.commit_to(min(m.commit, self.raft_log.last_index()))
        self.send(
            Message(type=MT.HEARTBEAT_RESP, to=m.frm, context=m.context, lease_tick=m.lease_tick)
        )

    def handle_snapshot(self, m: Message) -> None:
        """Install a snapshot from the leader, or tell it how far we already are."""
        if m.snapshot is not None and self.restore(m.snapshot):
            self.send(Message(type=MT.APP_RESP, to=m.frm, index=self.raft_log.last_index()))
        else:
            self.send(Message(type=MT.APP_RESP, to=m.frm, index=self.raft_log.committed))

    def restore(self, snap: Snapshot) -> bool:
        """Replace log and membership by a snapshot; false if it brings nothing new."""
        meta = snap.metadata
        if meta.index <= self.raft_log.committed:
            return False
        # A snapshot whose membership does not name us yet is accepted: a new member then
        # learns of its own addition from the entries that follow the snapshot.
        if self.raft_log.match_term(meta.index, meta.term):
            self.raft_log.commit_to(meta.index)
            return False
        self.raft_log.restore(snap)
        self._restore_conf_state(meta.conf_state)
        return True

    # -- membership -----------------------------------------------------------------------

    def _restore_conf_state(self, cs: ConfState) -> None:
        cfg, progress = restore(self.prs, cs, self.raft_log.last_index())
        self.switch_to_config(cfg, progress)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Switch to the configuration after `cc` (called when its entry is applied)."""
        changer = Changer(self.prs, self.raft_log.last_index())
        cfg, progress = changer.apply(cc)
        return self.switch_to_config(cfg, progress)

    def switch_to_config(self, cfg: TrackerConfig, progress: dict[NodeId, Progress]) -> ConfState:
        """Adopt a new membership and react to it (step down if removed, re-commit)."""
        self.prs.config, self.prs.progress = cfg, progress
        pr = progress.get(self.id)
        self.is_learner = pr is not None and pr.is_learner
        cs = cfg.conf_state()
        if self.role is not StateRole.LEADER:
            return cs
        if pr is None or self.is_learner:
            # A leader removed or demoted steps down; it cannot lead this term again.
            self.become_follower(self.term, NONE)
            return cs
        if self.lead_transferee != NONE and not self.prs.is_voter(self.lead_transferee):
            self.abort_leader_transfer()
        if self.maybe_commit():
            self.bcast_append()
        else:
            for node_id in self._peers():
                self.send_append(node_id, send_if_empty=False)
        return cs

    def maybe_auto_leave_joint(self) -> None:
        """Propose leaving a joint configuration once entering it has been applied."""
        cfg = self.prs.config
        if (
            self.role is StateRole.LEADER
            and cfg.auto_leave
            and cfg.voters.is_joint()
            and self.pending_conf_index <= self.raft_log.applied
        ):
            data = encode_conf_change(ConfChange())
            self.append_entries([Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=data)])
            self.pending_conf_index = self.raft_log.last_index()
            self.bcast_append()

    def _load_hard_state(self, hs: HardState) -> None:
        log = self.raft_log
        if not log.committed <= hs.commit <= log.last_index():
            bounds = f"[{log.committed}, {log.last_index()}]"
            raise AssertionError(f"hard state commit {hs.commit} is out of range {bounds}")
        log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote


def _with(m: Message, **changes: Any) -> Message:
    """A copy of `m` with some fields replaced."""
    return replace(m, **changes)


_COMMON_HANDLERS: dict[MessageType, Callable[[Raft, Message], None]] = {
    MT.HUP: Raft._step_hup,
    MT.VOTE: Raft._step_vote,
    MT.PRE_VOTE: Raft._step_vote,
}
