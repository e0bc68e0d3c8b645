"""`Replica`: one Raft node driven against an `Env`, with a state machine on top.

Theory of operation. The Raft core (`RawNode`) is pure; this driver is its only caller and
the only place that touches the outside world, always through `Env`. Every replica is
hosted: its host (`cairn.shard.host.RegionHost`: a node's data regions, or a placement
member's region) ticks it, and drains it together with the others it hosts. It is
synchronous and callback-driven: every entry point (a tick, messages arriving, a
proposal, a read) first catches up the ticks owed by the clock, feeds the core, then asks
its host for a drain, which handles each `Ready` in the order its docstring prescribes —
send `messages`, persist (one group write for the host, fsynced when any `must_sync`),
send `persisted_messages`, restore a snapshot, apply committed entries, serve reads whose
index is applied, `advance` (`prepare_ready`, `finish_ready`) — and finally compacts the
log when it has grown too long (`after_drain`).

Ticks come from the clock, not from the number of timer firings: a node that was paused
(or starved) catches up every tick it missed before it looks at anything else, so a leader
cannot trust a lease that the real time has already used up.

Each proposal carries a request id (origin node, incarnation nonce, sequence number). The
leader remembers at which index it appended each pending proposal; when that index is
applied the entry there is either ours (success) or another leader's (the proposal was
overwritten and definitely did not apply). When leadership is lost, pending proposals
complete as UNKNOWN: they may still be committed by the next leader.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import msgpack

from cairn.env import DurableState, Env, LogBatch
from cairn.raft.config import Config
from cairn.raft.errors import LocalRaftError, ProposalDroppedError
from cairn.raft.rawnode import RawNode
from cairn.raft.ready import Ready
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    NodeId,
    Snapshot,
    SnapshotMetadata,
    StateRole,
    decode_conf_change,
)


class RecoveryError(Exception):
    """The durable state cannot be trusted; the node must not start with it."""


class StateMachine(Protocol):
    """The deterministic application replicated by Raft.

    A machine may also offer `apply_many` (see `ApplyMany`); the replica then hands it each
    Ready's committed entries together, split only at conf changes.
    """

    def apply(self, index: int, data: bytes) -> object:
        """Apply one committed command and return its result."""
        ...

    def snapshot(self) -> bytes:
        """An image of the whole state, from which `restore` rebuilds it."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state by a `snapshot()` image."""
        ...

    @property
    def applied_index(self) -> int:
        """The last entry reflected in the machine's state.

        A durable machine (the store on LMDB) keeps it with its data, so after a restart
        the replica resumes from there instead of re-applying entries, which would apply
        a command such as INCR twice. A volatile machine starts from 0 and is rebuilt
        from the snapshot and the log.
        """
        ...


class Outcome(enum.Enum):
    """How a request ended, as far as this replica can tell."""

    OK = "ok"
    """Applied (a proposal) or served linearizably (a read)."""
    REJECTED = "rejected"
    """Definitely not applied: not the leader, dropped, or overwritten by another leader."""
    UNKNOWN = "unknown"
    """May or may not be applied (leadership lost while it was in flight, or timed out)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """The result handed to a request's `on_done` callback.

    `leader_hint` names the leader this replica believes in (0 when none), so a client
    told "not leader" can go there next.
    """

    outcome: Outcome
    value: object = None
    reason: str = ""
    leader_hint: NodeId = NONE


Callback = Callable[[Completion], None]

ApplyMany = Callable[[Sequence[tuple[int, bytes]]], Sequence[object]]
"""A machine's optional `apply_many(entries)`: apply consecutive `(index, command)` entries
as `apply` would one by one, in one storage transaction; the results in order."""

@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """How a replica drives its Raft node; `raft.applied` is set by the replica itself."""

    raft: Config
    tick_interval: float = 0.01
    snapshot_threshold: int = 1000
    """Take a snapshot and compact the log once this many entries are applied past it."""
    read_timeout_ticks: int = 100
    """A read without a read state after this many ticks completes as UNKNOWN."""
    max_catch_up_ticks: int = 100
    """At most this many missed ticks run through the core at once (a hosted replica
    still counts the rest for its lease: `Replica._count_ticks`)."""
    batch_ready: bool = False
    """Hand the proposals and reads of one event-loop turn to the core together, as one
    proposal message and one ReadIndex request, when the host drains (`_flush_batches`)."""


class ReplicaObserver(Protocol):
    """Hooks for the simulator's invariant checks and for metrics; must not call back in."""

    def on_persist(self, replica: Replica, ready: Ready) -> None:
        """`ready`'s snapshot, entries and hard state were just written (called for every
        Ready, before its messages are sent)."""
        ...

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        """`entry` was just applied (conf changes included)."""
        ...

    def on_restore(self, replica: Replica, snapshot: Snapshot) -> None:
        """The state machine was just replaced by `snapshot`."""
        ...


class ReplicaHost(Protocol):
    """The node-level driver of many replicas (`cairn.shard.host.RegionHost`).

    A replica keeps no timer and writes nothing itself at a drain: it asks its host to
    drain it, and the host carries out every hosted replica's Ready in two phases around
    one group write (see `Replica.prepare_ready`).
    """

    def request_drain(self, replica: Replica) -> None:
        """`replica` has work: drain it at the end of this turn of the event loop."""
        ...

    def on_wake(self, replica: Replica) -> None:
        """`replica` left quiescence: tick it again from now on."""
        ...


@dataclass(slots=True)
class PreparedReady:
    """A Ready whose early messages are sent, waiting for its batch to be made durable.

    The node writes `batch` (with every other replica's) in one write, synced when any of
    them `must_sync`, then calls `Replica.finish_ready` with this value.

    The pipelined protocol of a host (`RegionHost`): `inline` holds the Ready's committed
    entries, decoded, when they may be applied inside that write's transaction
    (`Replica.apply_in_txn`: normal commands only, no snapshot); `Replica.written` then
    completes them once the transaction committed, before the fsync, and the host may
    take the replica's next Ready while this one's fsync runs. None: they are applied
    by `finish_ready`, once durable, and the replica hands out no Ready until then.
    """

    ready: Ready
    batch: LogBatch
    inline: list[tuple[Entry, bytes | None, bytes]] | None = None
    values: Sequence[object] | None = None
    """What the machine answered for the inline entries that carry a command."""
    pipelined: bool = False
    """`Replica.written` was called: the core was told with `advance_append_async`."""

    @property
    def must_sync(self) -> bool:
        """Whether the write must be fsynced before `finish_ready`."""
        return self.ready.must_sync


@dataclass(slots=True)
class _PendingProposal:
    rid: bytes
    on_done: Callback


@dataclass(slots=True)
class _PendingRead:
    on_done: Callback
    deadline_tick: int
    index: int | None = None


@dataclass(slots=True)
class _Counters:
    """Running totals a replica keeps about itself (read by tests and metrics)."""

    snapshots_taken: int = 0
    snapshots_made: int = 0
    """Images built on demand for a follower (durable machines only)."""
    snapshots_restored: int = 0
    readies: int = 0
    lease_reads: int = 0
    """Reads completed at once under the leader's lease, without a ReadIndex round."""


class _OnDemandSnapshotStorage(MemoryStorage):
    """The in-memory log of a replica whose machine is durable: snapshots on demand.

    Such a machine keeps its applied index with its data, so compacting the log needs no
    image of the state, only the snapshot's metadata (`Replica._maybe_compact`). An image
    is made only when the core must send one to a follower that is behind the log: then
    `snapshot()` builds a fresh one at the applied index (committed, and still covered by
    the log's terms) and keeps it while the log still continues it, so a resend does not
    serialise the keyspace again.
    """

    def __init__(self, make: Callable[[], Snapshot]) -> None:
        super().__init__()
        self._make = make
        self._made: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        """An image at least as new as the log's start (see the class docstring)."""
        made = self._made
        if made is None or made.metadata.index < self.first_index() - 1:
            made = self._made = self._make()
        return made


def encode_request(rid: bytes, command: bytes) -> bytes:
    """The data of a normal entry: the request id, then the command."""
    return bytes(msgpack.packb([rid, command]))


def _fan_out(callbacks: list[Callback]) -> Callback:
    """One callback completing every one of `callbacks` with the same completion."""

    def done(completion: Completion) -> None:
        for callback in callbacks:
            callback(completion)

    return done


def _batch_of(rd: Ready) -> LogBatch:
    """What a Ready asks to persist, as one log-store write."""
    snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
    return LogBatch(snapshot=snap, entries=rd.entries, hard_state=rd.hard_state)


def decode_request(data: bytes) -> tuple[bytes, bytes]:
    """The inverse of `encode_request`."""
    rid, command = msgpack.unpackb(data)
    return bytes(rid), bytes(command)


class Replica:
    """A Raft node plus its state machine, driven through an `Env`.

    Invariant: `applied` equals the index of the last entry handed to the state machine
    (or of the snapshot it was restored from).
    """

    def __init__(
        self,
        env: Env,
        machine: StateMachine,
        config: ReplicaConfig,
        observer: ReplicaObserver | None = None,
        on_fatal: Callable[[Exception], None] | None = None,
        *,
        host: ReplicaHost,
    ) -> None:
        self.env = env
        self.host = host
        self.quiesced = False
        """A quiescent replica is not ticked (see `quiesce`); any activity wakes it."""
        self.on_fatal = on_fatal
        self.failure: Exception | None = None
        self.machine = machine
        self.config = config
        self.observer = observer
        self.counters = _Counters()
        self._nonce = env.random.getrandbits(48)
        self._seq = 0
        self._stopped = False
        self._proposals: dict[int, _PendingProposal] = {}
        self._reads: dict[bytes, _PendingRead] = {}
        self._snapshot_reports: list[NodeId] = []
        self._batched_proposals: list[tuple[bytes, bytes, Callback]] = []
        self._batched_reads: list[Callback] = []
        self._apply_many: ApplyMany | None = getattr(machine, "apply_many", None)
        self._is_plain: Callable[[bytes], bool] | None = getattr(machine, "is_plain", None)
        """A machine that can say which commands apply inside the log's transaction."""
        self._barrier = False
        """A Ready whose entries apply only once durable (`finish_ready`) is in flight."""
        self._durable = bool(getattr(machine, "durable", False))
        self.storage, self.conf_state, self.applied = self._recover(env.log_store.load())
        raft_config = replace(config.raft, id=env.node_id, applied=self.applied)
        self.raw = RawNode(raft_config, self.storage, env.random)
        self._ticks = 0
        self._start = env.clock.now()
        env.transport.set_handler(self.on_messages)
        if self.raw.has_ready():
            # Recovered with work (entries committed but not applied): the host ticks an
            # idle replica without draining it, so ask now.
            self._request_drain()

    # -- recovery -------------------------------------------------------------------------

    def _recover(self, state: DurableState) -> tuple[MemoryStorage, ConfState, int]:
        """Rebuild the in-memory log and the state machine from what the disk kept (a
        host founds a region by writing its first snapshot before it builds the replica)."""
        snap = state.snapshot
        storage = (
            _OnDemandSnapshotStorage(self._make_snapshot) if self._durable else MemoryStorage()
        )
        if not snap.is_empty():
            storage.apply_snapshot(snap)
        storage.append(state.entries)
        hs = state.hard_state
        applied = self.machine.applied_index
        if applied < snap.metadata.index:
            if snap.data:
                self.machine.restore(snap.data)
            applied = snap.metadata.index
        elif applied > storage.last_index():
            raise RecoveryError(
                f"the state machine has applied entry {applied} but the log ends at "
                f"{storage.last_index()}: the log lost entries it had acknowledged"
            )
        # The machine applies only committed entries, so its applied index is a commit
        # index too, even if the (unsynced) hard state that recorded it was lost.
        storage.set_hard_state(replace(hs, commit=max(hs.commit, applied)))
        conf_state = self._conf_state_at(storage, snap, applied)
        # The core starts from `applied` and takes this membership as the one in force
        # there; the snapshot's would miss the conf changes a durable machine applied.
        storage.set_conf_state(conf_state)
        return storage, conf_state, applied

    def _conf_state_at(self, storage: MemoryStorage, snap: Snapshot, applied: int) -> ConfState:
        """The membership in force at `applied`: the snapshot's, then applied conf changes."""
        conf_state = snap.metadata.conf_state
        if applied <= snap.metadata.index:
            return conf_state
        probe = RawNode(
            replace(self.config.raft, id=self.env.node_id, applied=snap.metadata.index),
            storage,
            self.env.random,
        )
        for entry in storage.entries(snap.metadata.index + 1, applied + 1):
            if entry.type is EntryType.CONF_CHANGE:
                conf_state = probe.apply_conf_change(decode_conf_change(entry.data))
        return conf_state

    # -- public API -----------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        """This replica's node id."""
        return self.env.node_id

    @property
    def role(self) -> StateRole:
        """The Raft role right now."""
        return self.raw.role

    @property
    def term(self) -> int:
        """The current term."""
        return self.raw.term

    @property
    def lead(self) -> NodeId:
        """The leader this node believes in (0 when none)."""
        return self.raw.lead

    @property
    def is_leader(self) -> bool:
        """Whether this node is the leader of its current term."""
        return self.raw.role is StateRole.LEADER

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (the process is gone)."""
        return self._stopped

    def stop(self) -> None:
        """Stop for good, as a crashed process would: no callbacks."""
        self._stopped = True

    def propose(self, command: bytes, on_done: Callback) -> None:
        """Replicate `command`; `on_done` gets the state machine's result once applied."""
        if self._reject_unless_leader(on_done):
            return
        rid = self._next_rid()
        if self.config.batch_ready:
            self._batched_proposals.append((rid, encode_request(rid, command), on_done))
            self._request_drain()
            return
        self._propose_with(rid, on_done, lambda: self.raw.propose(encode_request(rid, command)))

    def propose_conf_change(self, cc: ConfChange, on_done: Callback) -> None:
        """Replicate a membership change; `on_done` gets the new `ConfState` once applied."""
        if self._reject_unless_leader(on_done):
            return
        rid = self._next_rid()
        # The caller's context (the new peers' nodes) travels beside the request id.
        context = encode_request(rid, cc.context)
        change = ConfChange(changes=cc.changes, transition=cc.transition, context=context)
        self._propose_with(rid, on_done, lambda: self.raw.propose_conf_change(change))

    def read(self, on_done: Callback) -> None:
        """Complete `on_done` with OK once a linearizable read may be served here.

        The caller reads the state machine inside the callback: at that moment it
        reflects every write that completed before the read started.
        """
        if self._stopped:
            return
        if self.can_read_now():
            on_done(Completion(Outcome.OK))
            return
        if self.lead == NONE:
            on_done(Completion(Outcome.REJECTED, reason="no leader"))
            return
        if self.config.batch_ready:
            self._batched_reads.append(on_done)
        else:
            self._read_index(on_done)
        self._request_drain()

    def can_read_now(self) -> bool:
        """Whether a linearizable read may be served from the state as it is, at once: this
        leader holds its lease and has applied everything committed, so no Ready round
        (ReadIndex) is needed. Counted as a lease read when true."""
        if self._stopped or self.env.buggify("replica.lease_read_refused"):
            return False
        self._catch_up()
        index = self.raw.lease_read_index()
        if index is None or index > self.applied:
            return False
        self.counters.lease_reads += 1
        return True

    def _read_index(self, on_done: Callback) -> None:
        ctx = self._next_rid()
        deadline = self._ticks + self.config.read_timeout_ticks
        self._reads[ctx] = _PendingRead(on_done, deadline)
        try:
            self.raw.read_index(ctx)
        except LocalRaftError as exc:
            del self._reads[ctx]
            on_done(Completion(Outcome.REJECTED, reason=str(exc), leader_hint=self.lead))

    def transfer_leader(self, to: NodeId) -> None:
        """Ask the leader to hand leadership to `to`."""
        if self._stopped or self.env.buggify("replica.transfer_ignored"):
            return
        self._catch_up()
        self.raw.transfer_leader(to)
        self._request_drain()

    def campaign(self) -> None:
        """Start an election now."""
        if self._stopped:
            return
        self._catch_up()
        self.raw.campaign()
        self._request_drain()

    def on_messages(self, msgs: Sequence[Message]) -> None:
        """Feed messages from the network to the core (the `Transport` handler)."""
        if self._stopped:
            return
        self._catch_up()
        for msg in msgs:
            self._step(msg)
        self._request_drain()

    # -- requests -------------------------------------------------------------------------

    def _next_rid(self) -> bytes:
        self._seq += 1
        return bytes(msgpack.packb([self.node_id, self._nonce, self._seq]))

    def _reject_unless_leader(self, on_done: Callback) -> bool:
        if self._stopped:
            return True
        self._catch_up()
        if self.is_leader:
            return False
        on_done(Completion(Outcome.REJECTED, reason="not leader", leader_hint=self.lead))
        return True

    def _propose_with(self, rid: bytes, on_done: Callback, propose: Callable[[], None]) -> None:
        try:
            propose()
        except ProposalDroppedError as exc:
            on_done(Completion(Outcome.REJECTED, reason=str(exc), leader_hint=self.lead))
            return
        index = self.raw.log.last_index()
        self._proposals[index] = _PendingProposal(rid, on_done)
        self._request_drain()

    def _flush_batches(self) -> None:
        """Hand the core this turn's batched proposals (one message) and reads (one
        ReadIndex shared by all: each read began before it was taken, so serving them
        all at its index is linearizable)."""
        proposals, self._batched_proposals = self._batched_proposals, []
        if proposals:
            self._propose_batch(proposals)
        reads, self._batched_reads = self._batched_reads, []
        if len(reads) == 1:
            self._read_index(reads[0])
        elif reads:
            self._read_index(_fan_out(reads))

    def _propose_batch(self, batch: list[tuple[bytes, bytes, Callback]]) -> None:
        if not self.is_leader:
            for _, _, on_done in batch:
                on_done(Completion(Outcome.REJECTED, reason="not leader", leader_hint=self.lead))
            return
        try:
            self.raw.propose_many([data for _, data, _ in batch])
        except ProposalDroppedError as exc:
            for _, _, on_done in batch:
                on_done(Completion(Outcome.REJECTED, reason=str(exc), leader_hint=self.lead))
            return
        first = self.raw.log.last_index() - len(batch) + 1
        for i, (rid, _, on_done) in enumerate(batch):
            self._proposals[first + i] = _PendingProposal(rid, on_done)

    def _step(self, msg: Message) -> None:
        # A message from a node outside the configuration, or a stray local type: ignore.
        with contextlib.suppress(LocalRaftError):
            self.raw.step(msg)

    # -- time -----------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Tick once for every tick interval the clock has passed since the last tick.

        A quiescent replica is woken instead (`_wake`): the time it slept is not ticked.
        A replica that is owed more than `max_catch_up_ticks` (its process was starved)
        ticks its core that many times and only counts the rest (`_count_ticks`).
        """
        if self.quiesced:
            self._wake()
            return
        owed = self._owed_ticks(self.env.clock.now())
        if not owed:
            return
        self._ticks += owed
        ticked = min(owed, self.config.max_catch_up_ticks)
        for _ in range(ticked):
            self.raw.tick()
        self._count_ticks(owed - ticked)
        if self._reads:
            self._expire_reads()

    def _owed_ticks(self, now: float) -> int:
        """How many tick intervals the clock has passed since the last tick (O(1))."""
        interval = self.config.tick_interval
        if now < self._start + (self._ticks + 1) * interval:
            return 0  # the common case: every lease read asks
        due = max(self._ticks, int((now - self._start) / interval) - 1)
        while self._start + (due + 1) * interval <= now:
            due += 1
        return due - self._ticks

    def _count_ticks(self, ticks: int) -> None:
        """Let `ticks` pass for the lease without running them through the core.

        The core's tick count is the leader's lease clock: it must advance with the real
        time, or a leader that was starved or asleep could trust a lease the time has used
        up. The election and heartbeat timers are left where they stood, as if the time
        had not passed: a follower then refuses votes a little longer (only safer), and a
        host that falls behind does not fire every region's election at once.
        """
        self.raw.advance_lease_clock(ticks)

    def host_tick(self) -> None:
        """The host's timer fired: catch up the ticks owed, and ask
        for a drain only if they made work (a message, a change of role or term): an idle
        follower's tick then costs a few attribute reads, not a Ready pass."""
        if self._stopped or self.quiesced or self.env.buggify("replica.tick_skipped"):
            return
        raw = self.raw
        role, term = raw.role, raw.term
        self._catch_up()
        if (
            raw.has_unsent_messages()
            or raw.role is not role
            or raw.term != term
            or raw.log.committed > self.applied
        ):
            self._request_drain()

    def is_pristine(self) -> bool:
        """Whether this replica is as it was founded: no vote, no leader, no entry past
        the founding snapshot, its term the snapshot's (no election has reached it)."""
        raw = self.raw
        log = raw.log
        return (
            raw.vote == NONE
            and raw.lead == NONE
            and log.last_index() == log.first_index() - 1
            and raw.term == log.last_term()
        )

    def wake(self) -> None:
        """Leave quiescence now (the host saw the leader's node die, or was asked to)."""
        if not self._stopped and self.quiesced:
            self._catch_up()
            self._request_drain()

    def is_idle(self) -> bool:
        """Whether nothing is pending here: no request waits and the log is fully
        committed, applied and persisted (a precondition of quiescence)."""
        log = self.raw.log
        return (
            not self._proposals
            and not self._reads
            and not self._batched_proposals
            and not self._batched_reads
            and not self._snapshot_reports
            and not self.raw.has_ready()
            and not self.raw.ready_in_progress
            and log.committed == log.last_index() == self.applied
        )

    def quiesce(self) -> bool:
        """Stop ticking until something wakes this replica (CockroachDB's quiescence).

        The core is not ticked while quiescent: a leader sends no heartbeats and a
        follower's election timer stands still. The host decides when this is safe (every
        follower caught up, every peer's node live) and wakes followers whose leader's
        node stops answering. Any request or message wakes the replica (`_catch_up`).

        The ticks owed are run first, and they may change the role: a leader whose
        check-quorum fires in them steps down. A replica that so changed does not quiesce
        (False): a leaderless follower asleep would never campaign, and its region would
        stay without a leader for good.
        """
        if self._stopped:
            return False
        raw = self.raw
        before = (raw.role, raw.term, raw.lead)
        self._catch_up()
        if (raw.role, raw.term, raw.lead) != before:
            self._request_drain()
            return False
        self.quiesced = True
        return True

    def _wake(self) -> None:
        """Leave quiescence without ticking the time slept, but let the lease see it.

        The core's tick count still advances by the ticks slept: a leader's lease is
        measured in those ticks, and another leader may have been elected meanwhile (the
        followers wake when this node looks dead), so the lease must have run out exactly
        as if the leader had been ticking. The election timers are left where they stood:
        a follower that slept refuses votes for a little longer, which is only safer.
        """
        self.quiesced = False
        slept = self._owed_ticks(self.env.clock.now())
        self._ticks += slept
        self._count_ticks(slept)
        self.host.on_wake(self)

    def _expire_reads(self) -> None:
        expired = [ctx for ctx, r in self._reads.items() if r.deadline_tick <= self._ticks]
        for ctx in expired:
            read = self._reads.pop(ctx)
            read.on_done(Completion(Outcome.UNKNOWN, reason="read timed out"))

    # -- the Ready loop -------------------------------------------------------------------

    def _request_drain(self) -> None:
        """Ask the host to drain this replica at the end of this turn of the event loop,
        so every proposal and message that arrives in one turn shares one Ready (and the
        host's one group write and fsync)."""
        self.host.request_drain(self)

    def prepare_ready(self) -> PreparedReady | None:
        """Phase one of handling a Ready: take it from the core, act on the change of role,
        send the messages that may leave before the persist, and hand back the batch to
        write; None when there is no work. Raises what the core or a callback raises (the
        caller then calls `fail`)."""
        if self._stopped or self._barrier:
            return None
        self._flush_batches()
        while not self._stopped:
            if self.raw.has_ready():
                rd = self.raw.ready()
                self.counters.readies += 1
                if rd.soft_state is not None:
                    self._on_soft_state(rd.soft_state.role, rd.soft_state.lead)
                # `messages` may leave before the persist (a leader's appends then travel
                # while it fsyncs); `persisted_messages` promise durable state and wait.
                self._send(rd.messages)
                return PreparedReady(rd, _batch_of(rd), self._inline_of(rd))
            if not self._snapshot_reports:
                break
            self._report_snapshots()
        return None

    def _inline_of(self, rd: Ready) -> list[tuple[Entry, bytes | None, bytes]] | None:
        """`rd`'s committed entries not applied yet, decoded, if they may be applied in
        the write's own transaction (a hosted replica over a machine with `apply_many`
        and `is_plain`: no snapshot, no conf change, no admin command); else None."""
        if self.host is None or self._apply_many is None or self._is_plain is None:
            return None
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            return None
        run: list[tuple[Entry, bytes | None, bytes]] = []
        applied = self.applied
        for entry in rd.committed_entries:
            if entry.index <= applied:
                continue
            if entry.type is not EntryType.NORMAL:
                return None
            if not entry.data:
                run.append((entry, None, b""))  # a leader's no-op: nothing for the machine
                continue
            rid, command = decode_request(entry.data)
            if not self._is_plain(command):
                return None
            run.append((entry, rid, command))
        return run

    def apply_in_txn(self, prepared: PreparedReady) -> None:
        """Apply `prepared`'s inline entries; the host calls this inside the write
        transaction that holds the Ready's log batch, so the log and the machine's
        change commit together (or not at all: if this raises, the whole write is
        aborted). Their proposals complete in `written`, after the commit."""
        assert prepared.inline is not None and self._apply_many is not None
        commands = [(e.index, c) for e, rid, c in prepared.inline if rid is not None]
        prepared.values = self._apply_many(commands) if commands else ()

    def written(self, prepared: PreparedReady) -> None:
        """The host's write of `prepared.batch` committed (it may not be durable yet):
        complete the entries applied in it, serve reads, and let the core hand out the
        next Ready (`advance_append_async`). A Ready applied only once durable holds the
        replica's next Ready back until `finish_ready` (`_barrier`)."""
        rd = prepared.ready
        self.raw.advance_append_async(rd)
        prepared.pipelined = True
        inline = prepared.inline
        if inline is None:
            self._barrier = bool(rd.committed_entries) or rd.snapshot is not None
            return
        if inline:
            values = iter(prepared.values or ())
            for entry, rid, _ in inline:
                self._complete_applied(entry, rid, None if rid is None else next(values))
        if rd.committed_entries:
            self.raw.advance_apply_to(rd.committed_entries[-1].index, rd.committed_entries)
        self._serve_reads(rd)

    def finish_ready(self, prepared: PreparedReady) -> None:
        """Phase two, once `prepared.batch` is durable (when it had to be): adopt it in the
        in-memory log, send the persisted messages, restore, apply (unless `written` did),
        serve reads, and tell the core (`advance`, or `on_persist_ready` after
        `written`)."""
        rd = prepared.ready
        self._adopt(rd)
        self._send(rd.persisted_messages)
        if prepared.inline is None:
            if rd.snapshot is not None and not rd.snapshot.is_empty():
                self._restore(rd.snapshot)
            if self._apply_many is None:
                for entry in rd.committed_entries:
                    self._apply(entry)
            else:
                self._apply_batched(rd.committed_entries, self._apply_many)
            self._serve_reads(rd)
        if not prepared.pipelined:
            self.raw.advance(rd)
            return
        self.raw.on_persist_ready(rd.number)
        if prepared.inline is None:
            self._barrier = False
            if rd.committed_entries:
                self.raw.advance_apply_to(rd.committed_entries[-1].index, rd.committed_entries)

    def after_drain(self) -> None:
        """The end of a drain: compact the log if it has grown past the threshold."""
        self._maybe_compact()

    def fail(self, exc: Exception) -> None:
        """Stop for good because handling a Ready raised `exc`: a failed persist (fsync
        error, disk full) leaves the core with a Ready it cannot advance past, and a failed
        apply leaves the machine behind the log; either way nothing more may be answered
        from state that may not match the disk (`on_fatal`). Observers (the simulator's
        checker) read `failure`, so nothing raised here goes unseen."""
        self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failure = exc
        self.stop()
        pending, self._proposals = self._proposals, {}
        for index in sorted(pending):
            done = Completion(Outcome.UNKNOWN, reason=f"replica failed: {exc}")
            pending[index].on_done(done)
        reads, self._reads = self._reads, {}
        for read in reads.values():
            read.on_done(Completion(Outcome.REJECTED, reason=f"replica failed: {exc}"))
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def _adopt(self, rd: Ready) -> None:
        """Mirror what was just persisted in the in-memory log the core reads."""
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            self.storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if self.observer is not None:
            self.observer.on_persist(self, rd)

    def _send(self, msgs: Sequence[Message]) -> None:
        by_peer: dict[NodeId, list[Message]] = {}
        for msg in msgs:
            by_peer.setdefault(msg.to, []).append(msg)
            if msg.type is MessageType.SNAP:
                self._snapshot_reports.append(msg.to)
        for to in sorted(by_peer):
            if to == self.node_id:
                for msg in by_peer[to]:
                    self._step(msg)
            else:
                self.env.transport.send(to, by_peer[to])

    def _report_snapshots(self) -> None:
        """Tell the core its snapshots went out; a lost one is retried after a probe."""
        reports, self._snapshot_reports = self._snapshot_reports, []
        for to in reports:
            self.raw.report_snapshot(to, not self.env.buggify("replica.snapshot_reported_failed"))

    def _restore(self, snap: Snapshot) -> None:
        self.machine.restore(snap.data)
        self.applied = snap.metadata.index
        self.conf_state = snap.metadata.conf_state
        self.counters.snapshots_restored += 1
        for index in sorted(i for i in self._proposals if i <= self.applied):
            pending = self._proposals.pop(index)
            pending.on_done(Completion(Outcome.UNKNOWN, reason="replaced by a snapshot"))
        if self.observer is not None:
            self.observer.on_restore(self, snap)

    def _apply(self, entry: Entry) -> None:
        if entry.index <= self.applied:
            return
        rid, value = self._apply_entry(entry)
        self._complete_applied(entry, rid, value)

    def _complete_applied(self, entry: Entry, rid: bytes | None, value: object) -> None:
        """`entry` has been applied with result `value`: complete its proposal, if ours."""
        self.applied = entry.index
        pending = self._proposals.pop(entry.index, None)
        if pending is not None:
            if rid == pending.rid:
                pending.on_done(Completion(Outcome.OK, value=value))
            else:
                reason = "overwritten by another leader's entry"
                pending.on_done(Completion(Outcome.REJECTED, reason=reason, leader_hint=self.lead))
        if self.observer is not None:
            self.observer.on_apply(self, entry)

    def _apply_batched(self, entries: Sequence[Entry], apply_many: ApplyMany) -> None:
        """Apply `entries` like `_apply`, handing each run of normal entries to the
        machine's `apply_many` (one storage transaction per run); conf changes, which the
        core must see in order, split the runs."""
        run: list[Entry] = []
        for entry in entries:
            if entry.index <= self.applied:
                continue
            if entry.type is EntryType.CONF_CHANGE:
                self._apply_run(run, apply_many)
                run = []
                self._apply(entry)
            else:
                run.append(entry)
        self._apply_run(run, apply_many)

    def _apply_run(self, run: list[Entry], apply_many: ApplyMany) -> None:
        rids: list[bytes | None] = []
        commands: list[tuple[int, bytes]] = []
        for entry in run:
            if entry.data:
                request_id, command = decode_request(entry.data)
                commands.append((entry.index, command))
                rids.append(request_id)
            else:
                rids.append(None)  # a leader's no-op: nothing for the machine
        values = iter(apply_many(commands)) if commands else iter(())
        for entry, rid in zip(run, rids, strict=True):
            value = None if rid is None else next(values)
            self._complete_applied(entry, rid, value)

    def _apply_entry(self, entry: Entry) -> tuple[bytes | None, object]:
        """Apply one entry; return its request id (None for a leader's no-op) and result."""
        if entry.type is EntryType.CONF_CHANGE:
            cc = decode_conf_change(entry.data)
            self.conf_state = self.raw.apply_conf_change(cc)
            return self.conf_change_rid(cc), self.conf_state
        if not entry.data:
            return None, None
        rid, command = decode_request(entry.data)
        return rid, self.machine.apply(entry.index, command)

    def conf_change_rid(self, cc: ConfChange) -> bytes:
        """The request id inside a conf change's context (see `propose_conf_change`)."""
        return decode_request(cc.context)[0]

    def _serve_reads(self, rd: Ready) -> None:
        for rs in rd.read_states:
            read = self._reads.get(rs.request_ctx)
            if read is not None:
                read.index = rs.index
        if self.env.buggify("replica.read_served_late"):
            return  # buggify: the reads ready now are answered at a later Ready
        ready = [
            c for c, r in self._reads.items() if r.index is not None and r.index <= self.applied
        ]
        for ctx in ready:
            self._reads.pop(ctx).on_done(Completion(Outcome.OK))

    def _on_soft_state(self, role: StateRole, lead: NodeId) -> None:
        """Fail what can no longer complete here after a change of leader or role."""
        if role is not StateRole.LEADER and self._proposals:
            pending, self._proposals = self._proposals, {}
            for index in sorted(pending):
                done = Completion(Outcome.UNKNOWN, reason="not leader", leader_hint=lead)
                pending[index].on_done(done)
        waiting = [c for c, r in self._reads.items() if r.index is None]
        for ctx in waiting:
            done = Completion(Outcome.REJECTED, reason="leader changed", leader_hint=lead)
            self._reads.pop(ctx).on_done(done)

    # -- compaction -----------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        threshold = self.config.snapshot_threshold
        if self.env.buggify("replica.early_snapshot"):
            threshold = min(threshold, 5)
        if self._stopped or self.applied - self.storage.first_index() + 1 < threshold:
            return
        # Entries applied in their own write (`apply_in_txn`) may not be in the in-memory
        # log yet (it adopts them once durable): compact only what it holds.
        index = min(self.applied, self.storage.last_index())
        if index < self.storage.first_index() or (index != self.applied and not self._durable):
            return  # the image is of `applied`: wait until the log has caught up
        # A durable machine already holds the state up to `applied` on the same disk, and
        # its writes reach the disk before this record does (commit order), so the
        # snapshot record needs no image: one is made if a follower needs it.
        data = b"" if self._durable else self.machine.snapshot()
        snap = self.storage.create_snapshot(index, self.conf_state, data)
        self.storage.compact(index)
        self.env.log_store.write(LogBatch(snapshot=snap), sync=False)
        self.counters.snapshots_taken += 1

    def _make_snapshot(self) -> Snapshot:
        """An image of the (durable) machine at `applied`, for a follower behind the log."""
        meta = SnapshotMetadata(
            index=self.applied, term=self.raw.log.term(self.applied), conf_state=self.conf_state
        )
        self.counters.snapshots_made += 1
        return Snapshot(data=self.machine.snapshot(), metadata=meta)
