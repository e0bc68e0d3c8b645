"""`RawNode`: the whole synchronous API of the Raft core (etcd-raft's shape).

The application owns the loop: it calls `tick()` on a timer, `step()` for each message
from the network, `propose()` and friends for its own requests, and whenever
`has_ready()` is true it takes a `ready()`, carries it out in the order the `Ready`
docstring gives, and calls `advance(ready)`. Nothing here blocks or does I/O.

Pipelined (raft-rs's asynchronous protocol): instead of `advance`, the application may
call `advance_append_async(ready)` as soon as it has *started* the Ready's write, and then
take the next `ready()` while that write is still on its way to the disk: each Ready
hands out only the entries no earlier one did. Once the writes of every Ready up to
number n are durable (writes become durable in the order they were made), it calls
`on_persist_ready(n)`; once it has applied the committed entries handed out, it calls
`advance_apply()`. Between the two, the Ready's `persisted_messages` wait for the
persist; its `messages` (a leader's appends) need not (Raft thesis §10.2.1). Committed
entries may be handed out before the local write that holds them is durable: they are
committed (durable on a quorum), and a driver whose writes are durable in order applies
them in or after the write that holds them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cairn.raft.config import Config, PlantedBug
from cairn.raft.errors import LocalRaftError, ProposalDroppedError, StepLocalMessageError
from cairn.raft.log import RaftLog
from cairn.raft.progress import ProgressState
from cairn.raft.raft import Raft
from cairn.raft.ready import Ready
from cairn.raft.storage import Storage
from cairn.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    Snapshot,
    SoftState,
    StateRole,
    encode_conf_change,
    is_local,
)


@dataclass(frozen=True, slots=True)
class _Unpersisted:
    """What a Ready handed out for persisting, until `on_persist_ready` covers it."""

    number: int
    last_index: int
    last_term: int
    snapshot_index: int


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one peer."""

    match: int
    next_index: int
    state: ProgressState
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of a node's Raft state for logs, `INFO raft` and tests."""

    id: NodeId
    term: int
    vote: NodeId
    commit: int
    applied: int
    lead: NodeId
    role: StateRole
    conf_state: ConfState
    progress: dict[NodeId, PeerStatus]
    lead_transferee: NodeId


class RawNode:
    """A Raft node driven by the application, one call at a time."""

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        self.raft = Raft(config, storage, rng)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()
        self._ready_number = 0
        self._in_progress: Ready | None = None
        """The last Ready handed out, until `advance` or `advance_append_async`."""
        self._unpersisted: deque[_Unpersisted] = deque()
        """Readies whose writes were started and not yet acknowledged as durable."""
        self._persisted_number = 0
        self._log_view = LogView(self.raft.raft_log)

    # -- input ------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had passed."""
        self.raft.step(Message(type=MessageType.HUP, frm=self.raft.id))

    def step(self, msg: Message) -> None:
        """Handle a message from a peer.

        Local message types are refused; a forwarded proposal or read that this node
        cannot serve is dropped silently (the requester times out), as etcd does.
        """
        if is_local(msg.type):
            raise StepLocalMessageError(f"{msg.type.value} must not come from the network")
        if msg.frm not in self.raft.prs.progress and msg.type in (
            MessageType.APP_RESP,
            MessageType.HEARTBEAT_RESP,
            MessageType.SNAP_STATUS,
        ):
            return
        try:
            self.raft.step(msg)
        except ProposalDroppedError:
            if msg.frm == self.raft.id:
                raise

    def propose(self, data: bytes) -> None:
        """Propose an entry; raises `ProposalDroppedError` when it cannot be appended."""
        entry = Entry(term=0, index=0, data=data)
        self._step_local(Message(type=MessageType.PROP, entries=(entry,)))

    def propose_many(self, data: Sequence[bytes]) -> None:
        """Propose several entries as one message, appended (or dropped) together.

        The leader then sends them to each follower in one append instead of one
        append per entry; this is how a driver batches the proposals of a loop turn.
        """
        entries = tuple(Entry(term=0, index=0, data=d) for d in data)
        self._step_local(Message(type=MessageType.PROP, entries=entries))

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; apply it with `apply_conf_change` once committed."""
        entry = Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))
        self._step_local(Message(type=MessageType.PROP, entries=(entry,)))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Adopt the membership a committed conf-change entry describes."""
        return self.raft.apply_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read; it comes back as a `ReadState` carrying `ctx`.

        `ctx` must be unique among this node's pending reads.
        """
        self._step_local(Message(type=MessageType.READ_INDEX, context=ctx))

    def lease_read_index(self) -> int | None:
        """The index a read may be served at right now without messages (see `Raft`)."""
        return self.raft.lease_read_index()

    def transfer_leader(self, to: NodeId) -> None:
        """Ask the leader (this node, or forwarded to it) to hand leadership to `to`."""
        self.raft.step(Message(type=MessageType.TRANSFER_LEADER, frm=to))

    def report_unreachable(self, node_id: NodeId) -> None:
        """Tell the core a message to `node_id` could not be delivered."""
        self.raft.step(Message(type=MessageType.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: NodeId, ok: bool) -> None:
        """Tell the core whether a snapshot reached `node_id`."""
        self.raft.step(Message(type=MessageType.SNAP_STATUS, frm=node_id, reject=not ok))

    def _step_local(self, m: Message) -> None:
        self.raft.step(replace(m, frm=self.raft.id))

    # -- output -----------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether `ready()` would hand out any work."""
        r = self.raft
        return bool(
            r.soft_state() != self._prev_soft
            or self._hard_state_changed()
            or r.raft_log.unstable.has_next()
            or r.msgs
            or r.msgs_after_persist
            or r.read_states
            or r.raft_log.has_next_committed_entries()
        )

    @property
    def ready_in_progress(self) -> bool:
        """Whether a Ready was handed out and is not yet advanced or persisted (its write
        may still be on its way to the disk)."""
        return self._in_progress is not None or bool(self._unpersisted)

    @property
    def persisted_number(self) -> int:
        """The highest Ready number `on_persist_ready` (or `advance`) acknowledged."""
        return self._persisted_number

    def _hard_state_changed(self) -> bool:
        hs = self.raft.hard_state()
        return not hs.is_empty() and hs != self._prev_hard

    def ready(self) -> Ready:
        """The next batch of work; call `advance` (or `advance_append_async`) with it
        before asking again."""
        if self._in_progress is not None:
            raise LocalRaftError("ready() called again before advance()")
        r = self.raft
        log = r.raft_log
        soft = r.soft_state()
        hard = r.hard_state()
        entries = tuple(log.unstable_entries())
        hard_changed = self._hard_state_changed()
        unstable = log.unstable
        snapshot = None if unstable.snapshot_in_progress else unstable.snapshot
        self._ready_number += 1
        rd = Ready(
            number=self._ready_number,
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard_changed else None,
            read_states=tuple(r.read_states),
            entries=entries,
            snapshot=snapshot,
            committed_entries=tuple(log.next_committed_entries()),
            messages=tuple(r.msgs),
            persisted_messages=tuple(r.msgs_after_persist),
            must_sync=self._must_sync(hard, entries, snapshot),
        )
        r.msgs, r.msgs_after_persist, r.read_states = [], [], []
        if rd.soft_state is not None:
            self._prev_soft = soft
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        unstable.accept_in_progress()
        if snapshot is not None:
            log.applying_to(snapshot.metadata.index)
        if rd.committed_entries:
            log.applying_to(rd.committed_entries[-1].index)
        last = entries[-1] if entries else None
        self._unpersisted.append(
            _Unpersisted(
                rd.number,
                last.index if last is not None else 0,
                last.term if last is not None else 0,
                snapshot.metadata.index if snapshot is not None else 0,
            )
        )
        self._in_progress = rd
        return rd

    def _must_sync(
        self, hard: HardState, entries: tuple[Entry, ...], snapshot: Snapshot | None
    ) -> bool:
        """Entries, a new term or a new vote must be fsynced; a commit index need not be."""
        if entries or snapshot is not None:
            return True
        if self.raft.config.has_bug(PlantedBug.UNSYNCED_VOTE):
            return False
        return hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote

    def advance(self, rd: Ready) -> None:
        """Record that `rd` was carried out: persisted, sent and applied (the synchronous
        protocol: `rd` is the only Ready not yet acknowledged)."""
        if rd is not self._in_progress:
            raise LocalRaftError("advance() must be given the Ready last returned by ready()")
        if len(self._unpersisted) != 1:
            raise LocalRaftError("advance() with other Readies in flight: use on_persist_ready")
        self._in_progress = None
        self.on_persist_ready(rd.number)
        if rd.committed_entries:
            self.advance_apply_to(rd.committed_entries[-1].index, rd.committed_entries)

    def advance_append_async(self, rd: Ready) -> None:
        """The write of `rd` has been started (it may not be durable yet): `ready()` may be
        called again. Its durability is acknowledged later by `on_persist_ready`."""
        if rd is not self._in_progress:
            raise LocalRaftError("advance_append_async() needs the Ready last returned")
        self._in_progress = None

    def on_persist_ready(self, number: int) -> None:
        """Every Ready up to `number` is durable (its entries, hard state and snapshot).

        The leader may now count its own entries toward a quorum. If a message replaced
        a Ready's entries while its write was under way, the persisted index is not the
        log's any more and does not count."""
        if self._in_progress is not None and self._in_progress.number <= number:
            raise LocalRaftError("on_persist_ready() before advance_append_async()")
        r = self.raft
        log = r.raft_log
        while self._unpersisted and self._unpersisted[0].number <= number:
            done = self._unpersisted.popleft()
            if done.snapshot_index:
                log.stable_snap_to(done.snapshot_index)
                if done.snapshot_index > log.applied:
                    log.applied_to(done.snapshot_index)
            if done.last_index:
                log.stable_to(done.last_index, done.last_term)
                if log.match_term(done.last_index, done.last_term):
                    r.on_persisted(done.last_index)
        self._persisted_number = max(self._persisted_number, number)

    def advance_apply_to(self, index: int, entries: Sequence[Entry] = ()) -> None:
        """Committed entries up to `index` (among them `entries`, handed out by Readies)
        are applied."""
        r = self.raft
        if index > r.raft_log.applied:
            r.raft_log.applied_to(index)
        if entries:
            r.reduce_uncommitted_size(entries)
        r.maybe_auto_leave_joint()

    # -- inspection -------------------------------------------------------------------

    def status(self) -> Status:
        """The node's current Raft state."""
        r = self.raft
        progress = {}
        if r.role is StateRole.LEADER:
            progress = {
                i: PeerStatus(pr.match, pr.next_index, pr.state, pr.is_learner, pr.recent_active)
                for i, pr in sorted(r.prs.progress.items())
            }
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=r.raft_log.committed,
            applied=r.raft_log.applied,
            lead=r.lead,
            role=r.role,
            conf_state=r.prs.config.conf_state(),
            progress=progress,
            lead_transferee=r.lead_transferee,
        )

    def soft_state(self) -> SoftState:
        """The node's leader and role."""
        return self.raft.soft_state()

    # The cheap read-only views a driver consults on every tick or request. `status()`
    # copies the whole state; these read one field each, so a host with many regions can
    # ask them of every region on every tick.

    @property
    def id(self) -> NodeId:
        """This node's id in its group."""
        return self.raft.id

    @property
    def term(self) -> int:
        """The current term."""
        return self.raft.term

    @property
    def vote(self) -> NodeId:
        """The node voted for in the current term (`NONE`: no vote)."""
        return self.raft.vote

    @property
    def lead(self) -> NodeId:
        """The leader this node believes in (`NONE` when it knows of none)."""
        return self.raft.lead

    @property
    def role(self) -> StateRole:
        """Leader, follower, candidate or pre-candidate."""
        return self.raft.role

    @property
    def lead_transferee(self) -> NodeId:
        """The peer a leadership transfer in progress goes to (`NONE`: none)."""
        return self.raft.lead_transferee

    @property
    def election_elapsed(self) -> int:
        """Ticks since the election timer was last reset (for diagnostics)."""
        return self.raft.election_elapsed

    @property
    def log(self) -> LogView:
        """A read-only view of the log: its bounds, terms, commit and applied indexes."""
        return self._log_view

    def conf_change_pending(self) -> bool:
        """Whether a leader has a membership change in its log that is not yet committed
        (it refuses another until then)."""
        return self.raft.pending_conf_index > self.raft.raft_log.committed

    def has_unsent_messages(self) -> bool:
        """Whether the core holds messages the next `ready()` would hand out."""
        return bool(self.raft.msgs or self.raft.msgs_after_persist)

    def peer_matches(self) -> dict[NodeId, int]:
        """A leader's match index of every voter and learner, itself included (what it
        knows each one has in its log); empty on any other role."""
        if self.raft.role is not StateRole.LEADER:
            return {}
        return {i: pr.match for i, pr in self.raft.prs.progress.items()}

    # -- the lease clock ---------------------------------------------------------------

    @property
    def lease_clock(self) -> int:
        """Ticks this node has counted: `tick()` calls plus `advance_lease_clock` ticks.

        A leader's lease is measured on it (leases and heartbeat acknowledgements carry
        its readings), so it must keep pace with the real time even when the driver
        does not run every tick through the core."""
        return self.raft.tick_count

    def advance_lease_clock(self, ticks: int) -> None:
        """Let `ticks` pass for the lease without running them through the core.

        For a driver that was starved or let its node sleep (quiescence): the lease must
        not outlive the real time, or a leader could trust a lease another election has
        already ended. The election and heartbeat timers stay where they stood, as if the
        time had not passed: a follower then refuses votes a little longer (only safer),
        and a host that falls behind does not fire every group's election at once."""
        self.raft.advance_lease_clock(ticks)


class LogView:
    """A read-only view of a node's Raft log (what a driver may inspect, nothing more).

    Invariant: ``first_index() - 1 <= applied <= committed <= last_index()``.
    """

    __slots__ = ("_log",)

    def __init__(self, log: RaftLog) -> None:
        self._log = log

    @property
    def committed(self) -> int:
        """The highest index known to be committed."""
        return self._log.committed

    @property
    def applied(self) -> int:
        """The highest index handed out for applying and acknowledged by `advance`."""
        return self._log.applied

    def first_index(self) -> int:
        """The first index still readable from the log (after the snapshot)."""
        return self._log.first_index()

    def last_index(self) -> int:
        """The index of the last entry (the snapshot's index when there is none)."""
        return self._log.last_index()

    def last_term(self) -> int:
        """The term of the last entry."""
        return self._log.last_term()

    def term(self, index: int) -> int:
        """The term of the entry at `index`; 0 when it is compacted away or beyond the log."""
        return self._log.term(index)
