"""`RegionHost`: one per node, the driver of every region replica on it (TiKV's raftstore).

Theory of operation. Each hosted region is a `RegionPeer`: a `Replica` in hosted mode over a
`RegionMachine`, seeing a per-region `Env` whose node id is its peer id, whose transport
wraps its messages in `Envelope`s and whose log store is its slice of the node's
`HostStore`. The host owns everything per node:

* **One drain per turn.** A replica with work asks the host (`request_drain`); at the end
  of the turn the host takes a Ready from every such replica (`prepare_ready`, which sends
  the messages allowed to leave early), writes all their batches with one `write_many`
  and at most ONE fsync, then finishes them (`finish_ready`: persisted messages, apply,
  reads, advance), and repeats while any has more. Envelopes to one node leave together.
* **Pipelined writes.** A Ready's committed entries are applied inside the transaction
  that writes the drain's log batches (`Replica.apply_in_txn`: ordinary commands; a
  snapshot, a conf change or an admin command are applied once durable, and hold that
  replica's next Ready back) and their proposals complete as soon as it commits: they are
  committed, durable on a quorum, and writes reach the disk in order. On a store that
  can (`BackgroundSync`: a real node's LMDB), the write is committed unsynced and its
  fsync runs off the event loop, one at a time; meanwhile the host goes on taking
  Readies (several per replica may be in flight, each numbered), writing them and
  sending the messages that may leave before the local fsync (a leader's appends, Raft
  thesis §10.2.1). When an fsync ends (`_synced`) the Readies it covers are finished in
  order (`finish_ready`: persisted messages such as a follower's acknowledgement, then
  `RawNode.on_persist_ready(number)`), and the next fsync starts over everything written
  since. A Ready that needs no fsync (a commit index) of a replica with nothing waiting
  is finished at once.
* **One timer.** Every tick the host ticks the regions that are awake, and no other.
* **Quiescence.** A leader whose region has been idle for `quiesce_after_ticks` (nothing
  pending, every follower caught up, every peer's node live) sends its followers `QUIESCE`
  and stops ticking; a follower quiesces only if its term, leader, commit and log match
  the leader's, and otherwise answers `WAKE`. Anything addressed to a quiescent replica
  (a request, a Raft message) wakes it. So 1,000 idle regions cost the host nothing per
  tick but the liveness round: one `LIVENESS` envelope per neighbour node per interval.
* **Liveness.** A node not heard from (any envelope counts) for `liveness_timeout_ticks`
  is presumed dead: the host wakes each quiescent follower whose leader lives there, so a
  region whose leader died is re-elected as fast as one that never slept. A quiescent
  leader's lease is safe because waking advances its tick count by the time slept
  (`Replica._wake`).
* **Peers created by messages** (after an add-learner conf change): a Raft message for a
  region this node does not host creates an empty peer that waits for a snapshot, unless
  the message is older than a tombstone left here, or its range overlaps a region hosted
  here (whose split has not applied yet: that split creates the peer).
* **Splits** are admin commands applied by `RegionMachine`; as one applies, the host creates
  the right part's peer on this node from the split-off data, in a write that reaches the
  disk before anything the left part writes after it.
* **Merges** are two admin commands: `prepare_merge` freezes the source, `commit_merge`
  (carrying the source's final data) grows the target over it; as the commit applies the
  host writes the source peer's tombstone at once (so it is durable before anything the
  target writes later) and destroys the peer; a snapshot or a restart that shows a local
  region absorbed (`RegionMachine.absorbed`) destroys its peer too. A frozen source takes
  no request and no membership change.

Requests carry the region epoch the client routed by; a stale one, or a key the region no
longer holds when the command applies or the read is served, completes REJECTED with a
`StaleEpochError` value (the node answers MOVED or retries).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import msgpack

from cairn.env import Clock, LogBatch, LogStore, TimerHandle, Transport
from cairn.env.host_store import (
    BackgroundSync,
    HostStore,
    PeerState,
    RegionLogStore,
    RegionRecord,
)
from cairn.meta.region import (
    PLACEMENT_REGION_ID,
    Peer,
    PeerRole,
    Region,
    RegionEpoch,
    range_key,
)
from cairn.raft.ready import Ready
from cairn.raft.storage import BOOTSTRAP_INDEX
from cairn.raft.types import (
    NONE,
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
    Snapshot,
    SnapshotMetadata,
    StateRole,
    decode_conf_change,
    is_response,
)
from cairn.shard.envelope import Envelope, EnvelopeKind, liveness
from cairn.shard.region_machine import (
    SPLIT_INIT_INDEX,
    EpochNotMatch,
    KeyNotInRegion,
    RangeMachine,
    RegionMachine,
    RegionStorage,
    conf_change_nodes,
    encode_commit_merge,
    encode_prepare_merge,
    encode_split,
    initial_image,
)
from cairn.shard.replica import (
    Callback,
    Completion,
    Outcome,
    PreparedReady,
    Replica,
    ReplicaConfig,
    ReplicaObserver,
)


class StaleEpochError(Exception):
    """A request named an older epoch than the region's, or a key it no longer holds.

    `region` is this node's current description (the client refreshes its routing)."""

    def __init__(self, region: Region | None, reason: str) -> None:
        super().__init__(reason)
        self.region = region


@dataclass(frozen=True, slots=True)
class HostConfig:
    """How a host drives its regions; `replica.raft.id` is replaced by each peer id."""

    replica: ReplicaConfig
    hibernate: bool = True
    quiesce_after_ticks: int = 20
    liveness_interval_ticks: int = 2
    liveness_timeout_ticks: int = 10
    max_catch_up_ticks: int = 5
    """A late tick runs at most this many missed ticks through each awake region's core
    (replaces `replica.max_catch_up_ticks`); the rest only advance the lease clocks."""
    founding_sleep_ticks: int | None = None
    """How long a founding follower sleeps waiting for the founding leader before it wakes
    to campaign itself (default: four election timeouts); see `RegionHost._found`."""
    pipeline_depth: int = 4
    """How many Readies of one replica may wait for an fsync at once. More lets a write's
    appends leave while the previous write's fsync runs (latency under moderate load);
    fewer makes the next Ready bigger (fewer messages and transactions per write: CPU).
    At 1 a replica takes no Ready while one of its own waits, as before pipelining."""
    inline_sync_entries: int = 0
    """On a store that fsyncs in the background: a drain whose write holds at most this
    many log entries, while no fsync runs or waits, is fsynced inline instead (0: never).
    A single client's write then skips two thread hand-offs on each node (the fsync
    thread's wake-up and the event loop's), which cost more than a short fsync."""
    inline_sync_max_ms: float = 5.0
    """...as long as recent inline fsyncs took at most this long on average (a slow disk
    would stall the event loop)."""
    founding_campaign_ticks: int | None = None
    """When founding leaders campaign: this many ticks after the host starts, plus a random
    stagger of up to half an election timeout (default: two election timeouts, so the other
    founding nodes have started and are past the time a just-started node refuses votes)."""


FOUNDING_QUIESCE_TICKS = 3
"""Idle ticks after which a founding region's first leader quiesces: its followers have
applied its first entry one round trip after it committed (the commit is broadcast)."""

EnvelopeHandler = Callable[[Sequence[Envelope]], None]


class HostTransport(Protocol):
    """A host's network to the other nodes' hosts (best effort)."""

    def send(self, to: NodeId, envelopes: Sequence[Envelope]) -> None:
        """Queue `envelopes` for node `to`; never blocks, never raises for a dead node."""
        ...

    def set_handler(self, handler: EnvelopeHandler | None) -> None:
        """Register the function receiving this node's envelopes (None: the host stops)."""
        ...


ObserverFactory = Callable[[NodeId, int], ReplicaObserver | None]
"""(node, region id) -> the observer of that region's replica here (the sim's checker)."""

RegionListener = Callable[[NodeId, Region], None]
"""Told every description of a region applied on a node (split, conf change, snapshot)."""

MachineFactory = Callable[[], RangeMachine]

RecordMachineFactory = Callable[[RegionRecord], RangeMachine]
"""The machine of one region's peer, made knowing its record (a machine whose storage is
keyed by region id, such as the real node's, needs it)."""


class _RegionTransport:
    """A hosted replica's `Transport`: Raft messages go out as envelopes via the host."""

    def __init__(self, host: RegionHost, region_id: int) -> None:
        self._host = host
        self._region_id = region_id

    def send(self, to: NodeId, msgs: Sequence[Message]) -> None:
        self._host.send_raft(self._region_id, to, msgs)

    def set_handler(self, handler: Callable[[Sequence[Message]], None]) -> None:
        """Messages reach a hosted replica through its host, never directly."""


class _RegionEnv:
    """The `Env` one hosted replica sees: its peer id as node id, the host's clock."""

    def __init__(self, host: RegionHost, region_id: int, peer_id: int) -> None:
        self._host = host
        self._peer_id = peer_id
        self._transport = _RegionTransport(host, region_id)
        self._log_store = RegionLogStore(host.store, region_id)
        self._random = random.Random(host.rng.getrandbits(64))

    @property
    def node_id(self) -> NodeId:
        return self._peer_id

    @property
    def clock(self) -> Clock:
        return self._host.clock

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def log_store(self) -> LogStore:
        return self._log_store

    @property
    def random(self) -> random.Random:
        return self._random

    def buggify(self, site: str) -> bool:
        return self._host.buggify(site)


class RegionPeer:
    """This node's replica of one region: the `Replica`, its machine and description."""

    def __init__(self, host: RegionHost, record: RegionRecord, inner: RangeMachine) -> None:
        self.host = host
        self.region_id = record.region_id
        self.peer_id = record.peer_id
        placeholder = record.region or Region(record.region_id, epoch=RegionEpoch(0, 0))
        storage = host.store if isinstance(host.store, RegionStorage) else None
        planted = host.config.replica.raft.bugs
        self.machine = RegionMachine(
            inner, placeholder, self._on_split, self._on_merge, storage, planted
        )
        self.downstream = host.observers(host.node_id, record.region_id)
        self.idle_ticks = 0
        env = _RegionEnv(host, record.region_id, record.peer_id)
        config = host.config.replica
        self.replica = Replica(env, self.machine, config, self, host=host)
        host.announce(self.machine.region)

    @property
    def region(self) -> Region:
        """The description applied here (a placeholder until the first snapshot)."""
        return self.machine.region

    @property
    def initialized(self) -> bool:
        """Whether this peer has its data (it was founded, split off, or got a snapshot)."""
        return self.machine.region.epoch.version > 0

    # -- ReplicaObserver ---------------------------------------------------------------

    def on_persist(self, replica: Replica, ready: Ready) -> None:
        if self.downstream is not None:
            self.downstream.on_persist(replica, ready)

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        if entry.type is EntryType.CONF_CHANGE:
            self._on_conf_change(decode_conf_change(entry.data), entry.index)
        if self.downstream is not None:
            self.downstream.on_apply(replica, entry)

    def on_restore(self, replica: Replica, snapshot: Snapshot) -> None:
        self.host.announce(self.machine.region)
        self.host.destroy_absorbed(self.machine.absorbed, durable_now=False)
        if self.downstream is not None:
            self.downstream.on_restore(replica, snapshot)

    # -- structural changes ------------------------------------------------------------

    def _on_conf_change(self, cc: ConfChange, index: int) -> None:
        """Mirror an applied membership change in the description (nodes from context);
        durable storage records it with `index` applied."""
        self.machine.set_peers(conf_change_peers(cc, self.machine.region), index)
        self.host.announce(self.machine.region)
        # Only this peer's own removal destroys it: a peer that caught up from a snapshot
        # older than its own addition replays changes from before it was a member.
        if any(
            c.type is ConfChangeType.REMOVE_NODE and c.node_id == self.peer_id for c in cc.changes
        ):
            self.host.schedule_destroy(self.region_id)

    def _on_split(self, left: Region, right: Region, image: bytes | None) -> None:
        self.host.announce(left)
        self.host.create_split_peer(right, image)

    def _on_merge(self, source: Region, merged: Region) -> None:
        self.host.announce(merged)
        if self.machine.storage is not None:
            # The source's records now are the target's (one keyspace): a local source
            # replica still finishing this turn must not apply anything more.
            self.host.stop_peer(source.id)
        self.host.destroy_absorbed((source.id,), durable_now=True)


def conf_change_peers(cc: ConfChange, region: Region) -> tuple[Peer, ...]:
    """`region`'s peers once membership change `cc` applies (the nodes of added peers
    from its context, `conf_change_nodes`), in peer id order."""
    nodes = conf_change_nodes(cc.context)
    peers = {p.id: p for p in region.peers}
    for change in cc.changes:
        if change.type is ConfChangeType.REMOVE_NODE:
            peers.pop(change.node_id, None)
            continue
        role = PeerRole.LEARNER if change.type is ConfChangeType.ADD_LEARNER else PeerRole.VOTER
        node = nodes.get(change.node_id)
        if node is None and change.node_id in peers:
            node = peers[change.node_id].node_id
        if node is not None:
            peers[change.node_id] = Peer(change.node_id, node, role)
    return tuple(peers[i] for i in sorted(peers))


class RegionHost:
    """Every region replica of one node, driven together (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        clock: Clock,
        transport: HostTransport,
        store: HostStore,
        rng: random.Random,
        config: HostConfig,
        new_machine: MachineFactory,
        *,
        buggify: Callable[[str], bool] = lambda site: False,
        observers: ObserverFactory = lambda node, region: None,
        on_region: RegionListener = lambda node, region: None,
        machine_for: RecordMachineFactory | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock = clock
        self.transport = transport
        self.store = store
        self._background = store if isinstance(store, BackgroundSync) else None
        self._syncing = False
        """A background fsync is running (over the Readies it was started for)."""
        self._unsynced: list[tuple[RegionPeer, PreparedReady]] = []
        """Readies written since the running fsync started, in order: the next covers them."""
        self._waiting: dict[int, int] = {}
        """region id -> its Readies written and not finished yet (waiting for an fsync)."""
        self._held: set[int] = set()
        """Regions with work held back at `pipeline_depth` until an fsync ends."""
        self._inline_sync_ms = 0.0
        """A moving average of the inline fsyncs' durations (`inline_sync_entries`)."""
        self.inline_syncs = 0
        self.rng = rng
        self.config = replace(
            config, replica=replace(config.replica, max_catch_up_ticks=config.max_catch_up_ticks)
        )
        self.new_machine = new_machine
        self.buggify = buggify
        self.observers = observers
        self.on_region = on_region
        self.machine_for = machine_for
        self.peers: dict[int, RegionPeer] = {}
        self.tombstones: dict[int, int] = {}
        """region id -> the highest peer id of it removed from this node."""
        self.peer_nodes: dict[int, NodeId] = {}
        self.shape_version = 0
        """Grows whenever a peer is added or removed here or a description is applied: a
        view built from the hosted peers is current while it stands still."""
        self.awake: set[int] = set()
        self.stopped = False
        self.ticks = 0
        self.drains = 0
        self.region_ticks = 0
        self._dirty: set[int] = set()
        self._drain_scheduled = False
        self._outbox: dict[NodeId, list[Envelope]] = {}
        self._heard: dict[NodeId, float] = {}
        self._dead: set[NodeId] = set()
        self._start = clock.now()
        self._timer: TimerHandle | None = None
        self._timer_tick = 0
        self._next_liveness = config.liveness_interval_ticks
        self._quiesce_requests: dict[int, Envelope] = {}
        """region id -> a leader's QUIESCE, answered at the end of the drain."""
        self._woken_for: dict[NodeId, list[tuple[int, NodeId]]] = {}
        """node presumed dead -> the (region id, leader peer) followers woken for it."""
        self._founding: set[int] = set()
        """Regions founded here that have not quiesced since: their first leader quiesces
        as soon as its followers have its first entry (`FOUNDING_QUIESCE_TICKS`)."""
        self._asleep_at_birth: dict[int, NodeId] = {}
        """region id -> the node of its founding leader, for followers born quiescent."""
        self._birth_alarms: list[tuple[int, int, bool]] = []
        """A heap of (host tick, region id, campaign): when a founding peer born quiescent
        campaigns (the founding leader) or wakes (a follower), if still leaderless."""
        self._neighbour_cache: list[NodeId] | None = None
        self._recover()
        transport.set_handler(self.on_envelopes)
        self._schedule_tick()

    # -- life cycle --------------------------------------------------------------------

    def _recover(self) -> None:
        for record in self.store.records():
            if record.state is PeerState.TOMBSTONE:
                self.tombstones[record.region_id] = record.peer_id
            else:
                self._found(self._add_peer(record))
        absorbed = {i for peer in self.peers.values() for i in peer.machine.absorbed}
        for region_id in sorted(absorbed & set(self.peers)):
            self._destroy(region_id)

    def _add_peer(self, record: RegionRecord) -> RegionPeer:
        machine = self.new_machine() if self.machine_for is None else self.machine_for(record)
        peer = RegionPeer(self, record, machine)
        self.peers[record.region_id] = peer
        self.shape_version += 1
        self.awake.add(record.region_id)
        return peer

    def bootstrap_region(self, region: Region) -> RegionPeer:
        """Found `region` on this node (every founding node does the same)."""
        peer = region.peer_on(self.node_id)
        if peer is None:
            raise ValueError(f"region {region.id} has no peer on node {self.node_id}")
        image = initial_image(self.new_machine(), region)
        self._write_initial(region, peer.id, image, BOOTSTRAP_INDEX, HardState())
        return self._found(self._add_peer(RegionRecord(region.id, peer.id, region=region)))

    def _found(self, peer: RegionPeer) -> RegionPeer:
        """Start a peer found on disk or just founded. If its region has never elected a
        leader, every peer of it starts quiescent: the founding leader (`founding_leader`)
        campaigns at its alarm (`founding_campaign_ticks` plus a stagger), the others
        wake at its first message, when its node is presumed dead, or after
        `founding_sleep_ticks` without a leader. So a node founded with 1,000 regions
        ticks none of them until they campaign, one at a time, each once."""
        region = peer.region
        replica = peer.replica
        if not self.config.hibernate or not peer.initialized or not replica.is_pristine():
            return peer
        chosen = founding_leader(region)
        if chosen is None or region.peer(peer.peer_id) is None:
            return peer
        election = self.config.replica.raft.election_tick
        if chosen.id == peer.peer_id:
            first = self.config.founding_campaign_ticks
            first = 2 * election if first is None else first
            alarm = (self.ticks + first + self.rng.randrange(max(1, election // 2)), True)
        elif chosen.node_id in self._dead:
            return peer
        else:
            sleep = self.config.founding_sleep_ticks
            alarm = (self.ticks + (4 * election if sleep is None else sleep), False)
            self._asleep_at_birth[peer.region_id] = chosen.node_id
        if not replica.quiesce():
            return peer
        self.awake.discard(peer.region_id)
        self._founding.add(peer.region_id)
        heapq.heappush(self._birth_alarms, (alarm[0], peer.region_id, alarm[1]))
        return peer

    def _write_initial(
        self, region: Region, peer_id: int, image: bytes, index: int, old: HardState
    ) -> None:
        """The first snapshot of a founded or split-off region, and its record."""
        voters = tuple(p.id for p in region.voters())
        learners = tuple(p.id for p in region.learners())
        meta = SnapshotMetadata(index, index, ConfState(voters=voters, learners=learners))
        term = max(index, old.term)
        hs = HardState(term=term, vote=old.vote if old.term > index else NONE, commit=index)
        batch = LogBatch(snapshot=Snapshot(data=image, metadata=meta), hard_state=hs)
        record = RegionRecord(region.id, peer_id, region=region)
        # Synced: the replica about to be built reads its log back from what is durable.
        self.store.write_many([(region.id, batch)], sync=True, records=[record])

    def stop(self) -> None:
        """Stop for good, as a crashed process: no timers, no callbacks."""
        self.stopped = True
        for peer in self.peers.values():
            peer.replica.stop()
        if self._timer is not None:
            self._timer.cancel()

    # -- requests ----------------------------------------------------------------------

    def propose(
        self, region_id: int, epoch: RegionEpoch, command: bytes, on_done: Callback
    ) -> None:
        """Replicate `command` in region `region_id` as routed under `epoch`."""
        peer = self._checked(region_id, epoch, on_done)
        if peer is not None:
            peer.replica.propose(command, self._translated(peer, on_done))

    def read(self, region_id: int, epoch: RegionEpoch, key: bytes, on_done: Callback) -> None:
        """Complete OK once `key` may be read linearizably from region `region_id` here."""
        peer = self._checked(region_id, epoch, on_done)
        if peer is None:
            return

        def served(done: Completion) -> None:
            moved = not peer.region.contains(range_key(key)) or peer.machine.merging_into
            if done.outcome is Outcome.OK and moved:
                done = self._stale(peer.region, "the key moved to another region")
            on_done(self._hinted(done))

        peer.replica.read(served)

    def split(
        self,
        region_id: int,
        epoch: RegionEpoch,
        split_key: bytes,
        new_id: int,
        new_peer_ids: Sequence[int],
        on_done: Callback,
    ) -> None:
        """Propose cutting region `region_id` at range key `split_key` (see `RegionMachine`)."""
        peer = self._checked(region_id, epoch, on_done)
        if peer is not None:
            command = encode_split(peer.region.epoch, split_key, new_id, new_peer_ids)
            peer.replica.propose(command, self._translated(peer, on_done))

    def prepare_merge(
        self, region_id: int, epoch: RegionEpoch, target_id: int, on_done: Callback
    ) -> None:
        """Propose freezing region `region_id` (at `epoch`) to merge into `target_id`."""
        peer = self._checked(region_id, epoch, on_done)
        if peer is not None:
            command = encode_prepare_merge(peer.region.epoch, target_id)
            peer.replica.propose(command, self._translated(peer, on_done))

    def commit_merge(
        self,
        target_id: int,
        target_epoch: RegionEpoch,
        source: Region,
        source_data: bytes,
        on_done: Callback,
    ) -> None:
        """Propose growing region `target_id` (at `target_epoch`) over the frozen `source`,
        whose final data (its machine's inner snapshot) is `source_data`."""
        peer = self._checked(target_id, target_epoch, on_done)
        if peer is not None:
            command = encode_commit_merge(peer.region.epoch, source, source_data)
            peer.replica.propose(command, self._translated(peer, on_done))

    def transfer_leader(self, region_id: int, to_peer: int) -> None:
        """Ask this node's peer of region `region_id`, if it leads, to hand over to `to_peer`."""
        peer = self.peers.get(region_id)
        if peer is not None and not self.stopped and peer.replica.is_leader:
            peer.replica.transfer_leader(to_peer)

    def change_peer(
        self, region_id: int, kind: ConfChangeType, target: Peer, on_done: Callback
    ) -> None:
        """Propose adding (as voter or learner) or removing `target` in region `region_id`."""
        peer = self.peers.get(region_id)
        if peer is None:
            on_done(self._stale(None, f"region {region_id} is not on node {self.node_id}"))
            return
        if peer.machine.merging_into is not None:
            on_done(self._stale(peer.region, f"region {region_id} is merging"))
            return
        extra = bytes(msgpack.packb([[target.id, target.node_id]]))
        cc = ConfChange(changes=(ConfChangeSingle(kind, target.id),), context=extra)
        self.peer_nodes[target.id] = target.node_id
        peer.replica.propose_conf_change(cc, self._translated(peer, on_done))

    def _checked(self, region_id: int, epoch: RegionEpoch, on_done: Callback) -> RegionPeer | None:
        peer = self.peers.get(region_id)
        if peer is None or self.stopped or not peer.initialized:
            on_done(self._stale(None, f"region {region_id} is not on node {self.node_id}"))
            return None
        if epoch.version != peer.region.epoch.version:
            on_done(self._stale(peer.region, f"epoch {epoch} is not {peer.region.epoch}"))
            return None
        if peer.machine.merging_into is not None:
            on_done(self._stale(peer.region, f"region {region_id} is merging"))
            return None
        return peer

    def _translated(self, peer: RegionPeer, on_done: Callback) -> Callback:
        def done(completion: Completion) -> None:
            value = completion.value
            if isinstance(value, KeyNotInRegion | EpochNotMatch):
                completion = self._stale(value.region, "the region changed before applying")
            if self.buggify("host.apply_notified_late"):  # the notice of the apply comes late
                self.clock.call_later(0.05, partial(on_done, self._hinted(completion)))
                return
            on_done(self._hinted(completion))

        return done

    def _stale(self, region: Region | None, reason: str) -> Completion:
        return Completion(Outcome.REJECTED, value=StaleEpochError(region, reason), reason=reason)

    def _hinted(self, done: Completion) -> Completion:
        """Turn the leader hint from a peer id into a node id."""
        if not done.leader_hint:
            return done  # no hint (every successful write): nothing to translate
        return replace(done, leader_hint=self.peer_nodes.get(done.leader_hint, NONE))

    # -- the drain ---------------------------------------------------------------------

    def request_drain(self, replica: Replica) -> None:
        """See `ReplicaHost.request_drain`."""
        self._dirty.add(self._region_of(replica))
        self._schedule_drain()

    def on_wake(self, replica: Replica) -> None:
        """See `ReplicaHost.on_wake`."""
        region_id = self._region_of(replica)
        self.awake.add(region_id)
        peer = self.peers[region_id]
        peer.idle_ticks = 0
        self._tick_soon()
        if replica.is_leader:
            # Its followers sleep and drop its heartbeats (`_changes_nothing`): left
            # asleep, they would not answer, and check-quorum would depose an awake leader.
            frm = Peer(peer.peer_id, self.node_id)
            for p in peer.region.peers:
                if p.id != peer.peer_id:
                    self._post(Envelope(EnvelopeKind.WAKE, region_id, frm, p))

    @staticmethod
    def _region_of(replica: Replica) -> int:
        observer = replica.observer
        assert isinstance(observer, RegionPeer)
        return observer.region_id

    def _drain(self) -> None:
        self._drain_scheduled = False
        if self.stopped:
            return
        self.drains += 1
        self._drain_from(set())

    def _drain_from(self, touched: set[int]) -> None:
        while self._dirty:
            dirty, self._dirty = sorted(self._dirty), set()
            touched.update(dirty)
            prepared = self._prepare(dirty)
            if prepared:
                # What may leave before the write (a leader's appends) leaves now, so the
                # followers' fsyncs run during this node's, not after it.
                self._flush()
                self._persist(prepared)
        self._drain_end(touched)

    def _synced(
        self, covered: list[tuple[RegionPeer, PreparedReady]], error: Exception | None
    ) -> None:
        """The background fsync over `covered` ended: finish those Readies in order (or
        fail their replicas, as a failed synchronous write does), then what was written
        since if none of it needs an fsync, else start the next one; drain on."""
        self._syncing = False
        if self.stopped:
            return
        if error is not None:
            for peer, _ in covered:
                peer.replica.fail(error)
        touched = {peer.region_id for peer, _ in covered}
        self._finish_waiting(covered)
        if self._held:
            self._dirty |= self._held
            self._held.clear()
        if self._unsynced:
            if any(r.must_sync for _, r in self._unsynced):
                self._start_sync()
            else:
                later, self._unsynced = self._unsynced, []
                touched.update(peer.region_id for peer, _ in later)
                self._finish_waiting(later)
        self._drain_from(touched)

    def _drain_end(self, touched: set[int]) -> None:
        for region_id in sorted(touched):
            peer = self.peers.get(region_id)
            if peer is not None and not peer.replica.stopped:
                self._guard(peer, peer.replica.after_drain)
        if not self._waiting:
            # A follower answers a leader's QUIESCE with nothing in flight (else it would
            # answer WAKE for a write that is only waiting for its fsync).
            self._answer_quiesce_requests()
        self._flush()

    def _prepare(self, region_ids: list[int]) -> list[tuple[RegionPeer, PreparedReady]]:
        out = []
        depth = self.config.pipeline_depth
        for region_id in region_ids:
            peer = self.peers.get(region_id)
            if peer is None or peer.replica.stopped:
                continue
            if self._waiting.get(region_id, 0) >= depth:
                self._held.add(region_id)  # drained again when an fsync ends
                continue
            try:
                ready = peer.replica.prepare_ready()
            except Exception as exc:
                peer.replica.fail(exc)
                continue
            if ready is not None:
                out.append((peer, ready))
        return out

    def _persist(self, prepared: list[tuple[RegionPeer, PreparedReady]]) -> None:
        """Write the drain's batches, and apply their inline entries, in one transaction;
        complete what it applied (`Replica.written`); finish at once what is durable (or
        needs no fsync and waits behind nothing), and queue the rest for the background
        fsync. A failed write fails every replica in it."""
        batches = [(p.region_id, r.batch) for p, r in prepared if not r.batch.is_empty()]
        sync = any(r.must_sync for _, r in prepared)
        background = self._background
        if sync and background is not None and self._sync_inline(batches):
            background = None
        inline = [(p, r) for p, r in prepared if r.inline]
        apply = partial(_apply_in_txn, inline) if inline else None
        start = self.clock.now()
        try:
            self.store.write_many(batches, sync and background is None, apply=apply)
        except Exception as exc:
            for peer, _ in prepared:
                peer.replica.fail(exc)
            return
        if sync and background is None and self._background is not None:
            took_ms = 1000.0 * (self.clock.now() - start)
            self._inline_sync_ms = 0.8 * self._inline_sync_ms + 0.2 * took_ms
            self.inline_syncs += 1
        now: list[tuple[RegionPeer, PreparedReady]] = []
        for peer, ready in prepared:
            if not self._guard(peer, partial(peer.replica.written, ready)):
                continue
            region_id = peer.region_id
            if background is None or not (ready.must_sync or region_id in self._waiting):
                now.append((peer, ready))
            else:
                self._waiting[region_id] = self._waiting.get(region_id, 0) + 1
                self._unsynced.append((peer, ready))
        self._finish(now)
        if self._unsynced and not self._syncing:
            self._start_sync()

    def _sync_inline(self, batches: list[tuple[int, LogBatch]]) -> bool:
        """Whether this write should be fsynced inline (`HostConfig.inline_sync_entries`)."""
        limit = self.config.inline_sync_entries
        if limit <= 0 or self._syncing or self._unsynced:
            return False
        if self._inline_sync_ms > self.config.inline_sync_max_ms:
            self._inline_sync_ms *= 0.9  # try again once the disk may have calmed down
            return False
        return sum(len(b.entries) for _, b in batches) <= limit

    def _start_sync(self) -> None:
        """Start the background fsync over every Ready written and not yet covered."""
        assert self._background is not None
        covered, self._unsynced = self._unsynced, []
        self._syncing = True
        self._background.sync_in_background(partial(self._synced, covered))

    def _finish_waiting(self, done: list[tuple[RegionPeer, PreparedReady]]) -> None:
        for peer, _ in done:
            left = self._waiting.get(peer.region_id, 0) - 1
            if left > 0:
                self._waiting[peer.region_id] = left
            else:
                self._waiting.pop(peer.region_id, None)
        self._finish(done)

    def _finish(self, prepared: list[tuple[RegionPeer, PreparedReady]]) -> None:
        for peer, ready in prepared:
            if peer.replica.stopped:
                continue
            try:
                peer.replica.finish_ready(ready)
            except Exception as exc:
                peer.replica.fail(exc)
                continue
            self._dirty.add(peer.region_id)

    @staticmethod
    def _guard(peer: RegionPeer, action: Callable[[], None]) -> bool:
        try:
            action()
        except Exception as exc:
            peer.replica.fail(exc)
            return False
        return True

    # -- messages ----------------------------------------------------------------------

    def send_raft(self, region_id: int, to_peer: int, msgs: Sequence[Message]) -> None:
        """Wrap a region's outgoing messages for `to_peer`'s node (dropped if unknown)."""
        peer = self.peers[region_id]
        region = peer.region
        target = region.peer(to_peer)
        node = target.node_id if target is not None else self.peer_nodes.get(to_peer)
        if node is None:
            return
        frm = Peer(peer.peer_id, self.node_id)
        for msg in msgs:
            self._post(
                Envelope(
                    EnvelopeKind.RAFT,
                    region_id,
                    frm,
                    Peer(to_peer, node),
                    region.epoch,
                    region.start,
                    region.end,
                    message=msg,
                )
            )

    def _schedule_drain(self) -> None:
        """Drain at the end of this turn of the event loop (once, however often asked)."""
        if not self._drain_scheduled and not self.stopped:
            self._drain_scheduled = True
            self.clock.call_later(0.004 if self.buggify("host.drain_late") else 0.0, self._drain)

    def _post(self, envelope: Envelope) -> None:
        self._outbox.setdefault(envelope.to_peer.node_id, []).append(envelope)
        self._schedule_drain()

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for node in sorted(outbox):
            self.transport.send(node, outbox[node])

    def on_envelopes(self, envelopes: Sequence[Envelope]) -> None:
        """The transport handler: route each envelope to its region (or create it)."""
        if self.stopped:
            return
        for env in envelopes:
            self._heard[env.from_node] = self.clock.now()
            if env.from_node in self._dead:
                self._dead.discard(env.from_node)
                self._requiesce_followers_of(env.from_node)
            if env.from_peer.id:
                self.peer_nodes[env.from_peer.id] = env.from_node
            if env.kind is EnvelopeKind.RAFT:
                self._on_raft(env)
            elif env.kind is EnvelopeKind.QUIESCE:
                self._on_quiesce(env)
            elif env.kind is EnvelopeKind.WAKE:
                peer = self.peers.get(env.region_id)
                if peer is not None:
                    peer.replica.wake()

    def _on_raft(self, env: Envelope) -> None:
        assert env.message is not None
        peer = self.peers.get(env.region_id)
        if peer is None:
            peer = self._maybe_create(env)
            if peer is None:
                return
        if env.to_peer.id != peer.peer_id:
            return  # for an older or a newer peer of this region on this node
        if env.epoch.is_stale(peer.region.epoch) and peer.region.peer(env.from_peer.id) is None:
            return  # from a peer that has left the region
        if peer.replica.quiesced and _changes_nothing(peer.replica, env.message):
            return
        peer.replica.on_messages((env.message,))

    def _maybe_create(self, env: Envelope) -> RegionPeer | None:
        """A peer for a region first heard of here, if the message may create one."""
        assert env.message is not None
        if self.stopped or is_response(env.message.type) or env.region_id == PLACEMENT_REGION_ID:
            return None  # the placement group's region is founded by its members only
        if self.tombstones.get(env.region_id, 0) >= env.to_peer.id:
            return None
        for other in self.peers.values():
            r = other.region
            if (
                other.initialized
                and (not env.end or r.start < env.end)
                and (not r.end or env.start < r.end)
            ):
                return None  # a local region still covers it: its split will create it
        record = RegionRecord(env.region_id, env.to_peer.id)
        self.store.write_many([], sync=False, records=[record])
        return self._add_peer(record)

    def _on_quiesce(self, env: Envelope) -> None:
        """A leader asks to quiesce: answered at the end of this turn's drain, once the
        messages that came with the request (its last append or heartbeat) are handled
        here; asked at once, the follower would look busy and refuse."""
        self._quiesce_requests[env.region_id] = env
        self._schedule_drain()

    def _answer_quiesce_requests(self) -> None:
        requests, self._quiesce_requests = self._quiesce_requests, {}
        for region_id in sorted(requests):
            self._answer_quiesce(requests[region_id])

    def _answer_quiesce(self, env: Envelope) -> None:
        """Quiesce if this follower agrees with the leader on everything, else ask it to
        wake."""
        peer = self.peers.get(env.region_id)
        if peer is None or peer.replica.stopped:
            return
        replica = peer.replica
        raw = replica.raw
        if (
            self.config.hibernate
            and replica.role is StateRole.FOLLOWER
            and raw.lead == env.from_peer.id
            and raw.term == env.term
            and raw.log.committed == env.commit
            and replica.is_idle()
            and replica.quiesce()
        ):
            self.awake.discard(env.region_id)
            return
        frm = Peer(peer.peer_id, self.node_id)
        self._post(Envelope(EnvelopeKind.WAKE, env.region_id, frm, env.from_peer))

    # -- time --------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        """Arm the timer for the next tick, or, with every region quiescent, for the next
        tick with work (a liveness round, a founding sleeper's deadline)."""
        target = self.ticks + 1
        if self.config.hibernate and not self.awake:
            target = self._next_liveness
            if self._birth_alarms:
                target = min(target, self._birth_alarms[0][0])
            target = max(target, self.ticks + 1)
        self._timer_tick = target
        at = self._start + target * self.config.replica.tick_interval
        self._timer = self.clock.call_later(max(0.0, at - self.clock.now()), self._on_tick)

    def _tick_soon(self) -> None:
        """A region woke: tick from the next tick on, if the timer was armed for later."""
        if self._timer is not None and not self.stopped and self._timer_tick > self.ticks + 1:
            self._timer.cancel()
            self._timer = None
            self._schedule_tick()

    def _due_tick(self) -> int:
        """The number of the last tick whose time has come (a timer firing at its tick's
        time counts as on time, whatever the float rounding)."""
        return int((self.clock.now() - self._start) / self.config.replica.tick_interval + 1e-6)

    def _on_tick(self) -> None:
        """Tick every awake region once. A tick that finds itself late (the process was
        starved) does not run the ticks it missed: it moves on to the current one, and
        each replica runs at most `max_catch_up_ticks` of what it is owed."""
        if self.stopped:
            return
        self._timer = None
        due = self._due_tick()
        late = due - self._timer_tick
        self.ticks = max(self.ticks + 1, due)
        for region_id in sorted(self.awake):
            peer = self.peers.get(region_id)
            if peer is None or peer.replica.stopped:
                self.awake.discard(region_id)
                continue
            if self.config.hibernate and self._maybe_quiesce(peer):
                continue
            self.region_ticks += 1
            peer.replica.host_tick()
        self._ring_birth_alarms()
        if self.ticks >= self._next_liveness:
            self._next_liveness = self.ticks + self.config.liveness_interval_ticks
            # A tick that ran late has not yet read what arrived meanwhile: judging the
            # other nodes' silence now would wake regions because we were slow.
            self._liveness_round(judge=late < 2)
        self._schedule_tick()

    def _ring_birth_alarms(self) -> None:
        """Founding leaders still asleep campaign; founding followers still without a
        leader wake (see `_found`)."""
        while self._birth_alarms and self._birth_alarms[0][0] <= self.ticks:
            _, region_id, campaign = heapq.heappop(self._birth_alarms)
            if not campaign:
                self._asleep_at_birth.pop(region_id, None)
            peer = self.peers.get(region_id)
            if peer is None or not peer.replica.quiesced or peer.replica.lead != NONE:
                continue
            if campaign:
                peer.replica.campaign()
            else:
                peer.replica.wake()

    def _maybe_quiesce(self, peer: RegionPeer) -> bool:
        """Quiesce a leader idle for long enough whose followers are all caught up (checked
        before the tick, while nothing the tick makes is pending); True if it did."""
        replica = peer.replica
        raw = replica.raw
        if not replica.is_leader or raw.lead_transferee or not replica.is_idle():
            peer.idle_ticks = 0
            return False
        last = raw.log.last_index()
        matches = raw.peer_matches()
        others = [i for i in matches if i != peer.peer_id]
        nodes = [self.peer_nodes.get(i) or _node_in(peer.region, i) for i in others]
        if (
            any(matches[i] != last for i in others)
            or any(n is None or n in self._dead for n in nodes)
            or raw.conf_change_pending()
        ):
            peer.idle_ticks = 0
            return False
        peer.idle_ticks += 1
        founding = peer.region_id in self._founding
        wait = FOUNDING_QUIESCE_TICKS if founding else self.config.quiesce_after_ticks
        if peer.idle_ticks < wait or self.buggify("host.quiesce_deferred"):
            return False
        if not replica.quiesce():
            peer.idle_ticks = 0
            return False
        self._founding.discard(peer.region_id)
        frm = Peer(peer.peer_id, self.node_id)
        for i, node in zip(others, nodes, strict=True):
            assert node is not None
            self._post(
                Envelope(
                    EnvelopeKind.QUIESCE,
                    peer.region_id,
                    frm,
                    Peer(i, node),
                    peer.region.epoch,
                    term=raw.term,
                    commit=raw.log.committed,
                )
            )
        self.awake.discard(peer.region_id)
        return True

    def _liveness_round(self, judge: bool = True) -> None:
        """Tell every neighbour node we live; wake followers of nodes gone silent (if
        `judge`)."""
        now = self.clock.now()
        timeout = self.config.liveness_timeout_ticks * self.config.replica.tick_interval
        for node in self._neighbours():
            self._post(liveness(self.node_id, node))
            if not judge:
                continue
            if node not in self._dead and now - self._heard.get(node, self._start) > timeout:
                self._dead.add(node)
                self._wake_followers_of(node)

    def _neighbours(self) -> list[NodeId]:
        """The other nodes hosting a peer of a region hosted here (cached: a liveness
        round must not cost O(regions))."""
        if self._neighbour_cache is None:
            nodes = {p.node_id for peer in self.peers.values() for p in peer.region.peers}
            nodes.discard(self.node_id)
            self._neighbour_cache = sorted(nodes)
        return self._neighbour_cache

    def _requiesce_followers_of(self, node: NodeId) -> None:
        """`node`, presumed dead, was heard from again: the followers woken for it that
        still follow the same leader there with nothing pending quiesce again, as if never
        woken (their leader, if it woke meanwhile, wakes them by its next message). A
        loaded process that missed a liveness round so does not wake its regions for
        good: awake followers of a quiescent leader would campaign."""
        woken, self._woken_for[node] = self._woken_for.get(node, []), []
        for region_id, lead in woken:
            peer = self.peers.get(region_id)
            if peer is None or peer.replica.stopped or peer.replica.quiesced:
                continue
            replica = peer.replica
            if (
                replica.role is StateRole.FOLLOWER
                and replica.lead == lead
                and replica.is_idle()
                and replica.quiesce()
            ):
                self.awake.discard(region_id)

    def _wake_followers_of(self, node: NodeId) -> None:
        """Wake the quiescent followers whose leader, or founding leader, is on `node`."""
        woken = self._woken_for.setdefault(node, [])
        for region_id in sorted(self.peers):
            replica = self.peers[region_id].replica
            if not replica.quiesced:
                continue
            lead = replica.lead
            if lead == NONE:
                lead_node = self._asleep_at_birth.get(region_id)
            else:
                lead_node = _node_in(self.peers[region_id].region, lead)
            if lead_node == node:
                if lead != NONE:
                    woken.append((region_id, lead))
                replica.wake()

    def is_live(self, node: NodeId) -> bool:
        """Whether `node` has been heard from recently enough (this node: always)."""
        return node == self.node_id or node not in self._dead

    # -- structural changes ------------------------------------------------------------

    def announce(self, region: Region) -> None:
        """A description was applied here: learn its peers' nodes, tell the listener."""
        self._neighbour_cache = None
        self.shape_version += 1
        for p in region.peers:
            self.peer_nodes[p.id] = p.node_id
        if region.epoch.version > 0:
            self.on_region(self.node_id, region)

    def create_split_peer(self, right: Region, image: bytes | None) -> None:
        """A split applied here: create the right part's peer, unless it exists already
        (created by a message, or ahead of this replay) or was removed from this node.
        Without `image` the split's transaction has founded it on disk already."""
        mine = right.peer_on(self.node_id)
        if mine is None or right.id in self.peers or right.id in self.tombstones:
            return
        if image is not None:
            self._write_initial(right, mine.id, image, SPLIT_INIT_INDEX, HardState())
        self._add_peer(RegionRecord(right.id, mine.id, region=right))
        self._dirty.add(right.id)

    def stop_peer(self, region_id: int) -> None:
        """Stop this node's replica of `region_id` now (it is destroyed after the turn)."""
        peer = self.peers.get(region_id)
        if peer is not None:
            peer.replica.stop()

    def destroy_absorbed(self, region_ids: Sequence[int], durable_now: bool) -> None:
        """Destroy, after this turn, the local peers of regions merged away. With
        `durable_now` their tombstones are written at once, before anything the target
        writes after the merge (a compaction that drops the commit entry), so no restart
        finds both the grown target and the source's peer."""
        for region_id in sorted(set(region_ids)):
            peer = self.peers.get(region_id)
            if peer is None:
                continue
            if durable_now:
                tomb = RegionRecord(region_id, peer.peer_id, PeerState.TOMBSTONE, peer.region)
                self.store.write_many([], sync=False, records=[tomb])
            self.schedule_destroy(region_id)

    def destroy_stale_peer(self, region_id: int, peer_id: int) -> None:
        """Destroy this node's peer `peer_id` of region `region_id`, which is no longer a
        member (the placement driver says so: it was removed while this node was away)."""
        peer = self.peers.get(region_id)
        if peer is not None and peer.peer_id == peer_id:
            self.schedule_destroy(region_id)

    def schedule_destroy(self, region_id: int) -> None:
        """This node's peer was removed from the region: tombstone it after this turn."""
        self.clock.call_later(0.0, lambda: self._destroy(region_id))

    def _destroy(self, region_id: int) -> None:
        peer = self.peers.pop(region_id, None)
        if peer is None or self.stopped:
            return
        peer.replica.stop()
        self.awake.discard(region_id)
        self._neighbour_cache = None
        self.shape_version += 1
        self.tombstones[region_id] = peer.peer_id
        record = RegionRecord(region_id, peer.peer_id, PeerState.TOMBSTONE, peer.region)
        self.store.write_many([], sync=True, records=[record])


def _apply_in_txn(inline: list[tuple[RegionPeer, PreparedReady]]) -> None:
    """Inside the drain's write transaction: apply each Ready's inline entries (what
    raises aborts the whole write, so no machine keeps half of a Ready)."""
    for peer, ready in inline:
        if not peer.replica.stopped:
            peer.replica.apply_in_txn(ready)


def _node_in(region: Region, peer_id: int) -> NodeId | None:
    p = region.peer(peer_id)
    return p.node_id if p is not None else None


def founding_leader(region: Region) -> Peer | None:
    """The voter that campaigns first in a region that has never had a leader: spread
    over the voters by region id (with peer ids in node order, region 1's on the first
    node, region 2's on the second...), so founding leaders are balanced over the nodes."""
    voters = sorted(region.voters(), key=lambda p: p.id)
    return voters[(region.id - 1) % len(voters)] if voters else None


def _changes_nothing(replica: Replica, msg: Message) -> bool:
    """Whether a quiescent replica may drop `msg` without waking: an answer to its last
    heartbeat or append (a leader), or its leader's last heartbeat (a follower), arriving
    after the quiescence. Raft allows dropping any message; a quiescent leader has no read
    waiting for a heartbeat's answer, and a shorter lease is only safer."""
    raw = replica.raw
    if msg.term != raw.term:
        return False
    if replica.is_leader:
        if msg.type is MessageType.HEARTBEAT_RESP:
            return True
        return (
            msg.type is MessageType.APP_RESP
            and not msg.reject
            and msg.index <= raw.log.last_index()
        )
    return (
        msg.type is MessageType.HEARTBEAT
        and msg.frm == raw.lead
        and msg.commit <= raw.log.committed
    )
