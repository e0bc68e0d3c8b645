"""`PlacementAgent`: a node's side of the placement driver — heartbeats out, steps in.

Theory of operation. Every `heartbeat_interval` of its clock the agent sends one
`PlacementRequest` to the placement member it believes leads: its node heartbeat (the
peers it hosts, so the driver can name stale ones), a `RegionHeartbeat` for every region
it leads, and — when it has not registered since it started, or the driver forgot it — an
`AddNode` first. The reply carries one result per command: the node heartbeat's names the
peers to destroy, and each region heartbeat's the step that region's leader must execute.

Finding the leader. A reply refused by a member that does not lead names the leader it
believes in; the next round goes there (or to the next member when none is named). A
request unanswered for `request_timeout` is given up and the next member is tried, so a
node that cannot reach the leader keeps walking the members until one answers. One
request is in flight at a time: heartbeats are idempotent and a newer round says
everything an older one did.

Executing steps, idempotently. A step is executed only if it has visibly not happened yet
on the local leader (the peer is absent, the role is wrong, the epoch still the one the
step names), and the same step for the same region is not executed again within
`step_retry`: the driver resends a step on every heartbeat until a report shows it done,
and a Raft proposal takes a few round trips to show. `AddLearner`, `PromoteLearner` and
`RemovePeer` are membership changes, `TransferLeader` a leadership transfer, `SplitRegion` a
split at the key the leader picks (`RegionInspector.split_key`) or the key it names.

Merges. `MergeRegion` makes the source's leader propose `prepare_merge`, which freezes the
source at every replica once applied. A frozen region is no longer reported (its merge,
not the driver, decides what happens to it). Each round, every node holding a frozen
replica of a source and leading the target proposes `commit_merge` on the target with the
frozen replica's final data and the target's current epoch; the merge operator placed the
two regions' replicas on the same nodes, so the target's leader holds a source replica
that freezes once the prepare is applied there. While a local replica is frozen into a
region, no step touches that region here (a split of the target would leave the source
with no neighbour to merge into).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cairn.env import Clock, TimerHandle
from cairn.meta.region import Peer, PeerRole, Region
from cairn.placement.commands import (
    Ack,
    AddNode,
    Command,
    NodeHeartbeat,
    NodeHeartbeatReply,
    RegionHeartbeat,
    RegionHeartbeatReply,
    Result,
)
from cairn.placement.model import HostedPeer, NodeStats, RegionReport
from cairn.placement.service import PlacementReply, PlacementRequest
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitPolicy,
    SplitRegion,
    Step,
    TransferLeader,
)
from cairn.raft.types import NONE, ConfChangeType, NodeId
from cairn.shard.host import RegionHost, RegionPeer
from cairn.shard.replica import Completion


class RegionInspector(Protocol):
    """What only the application's data can tell about a region the node leads."""

    def report(self, peer: RegionPeer) -> RegionReport:
        """The region heartbeat of leader `peer` (size, keys, pending peers)."""
        ...

    def split_key(self, peer: RegionPeer) -> bytes | None:
        """Where leader `peer` would cut its region in two (None: nowhere valid)."""
        ...


RequestSender = Callable[[NodeId, PlacementRequest], None]
"""Sends a request to a placement member (best effort)."""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The agent's timing, in seconds of the node's clock."""

    heartbeat_interval: float = 0.1
    request_timeout: float = 0.3
    """A request unanswered this long is given up; the next member is tried."""
    step_retry: float = 0.3
    """The same step for the same region is not executed again sooner."""
    report_refresh: float = 30.0
    """A region that did not change is reported again after this long, and so is the list
    of hosted replicas (TiKV re-reports every 60 s)."""
    change_slack: tuple[int, int, int] = (0, 0, 4096)
    """A region's size (bytes), key count and write rate (bytes/s) have changed when they
    moved by more than an eighth plus these; smaller drifts wait for the refresh."""


@dataclass(slots=True)
class AgentStats:
    """What agents did (one object may be shared by a node's incarnations)."""

    rounds: int = 0
    requests: int = 0
    served: int = 0
    refused: int = 0
    timeouts: int = 0
    registrations: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    merges_prepared: int = 0
    merges_committed: int = 0
    stale_peers: int = 0


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """How a node registers: its addresses and labels (zone, rack, ...)."""

    peer_address: str = ""
    client_address: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Reported:
    """What a region looked like when its leader last reported it (served)."""

    quick: tuple[object, ...]
    """Cheap to read state (applied index, term, epoch, followers' progress): while it
    stands still the region is not inspected at all."""
    report: RegionReport
    at: float


@dataclass(slots=True)
class _InFlight:
    request: PlacementRequest
    member: NodeId
    sent_at: float
    reported: dict[int, _Reported] = field(default_factory=dict)
    """What the request reports, adopted once it is served."""
    hosted: tuple[HostedPeer, ...] | None = None


def _ignore(done: Completion) -> None:
    """A step's outcome is learned from the next report, not from its callback."""


class PlacementAgent:
    """One node's agent of the placement driver (see the module docstring)."""

    def __init__(
        self,
        host: RegionHost,
        clock: Clock,
        send: RequestSender,
        members: Sequence[NodeId],
        inspector: RegionInspector,
        *,
        identity: NodeIdentity | None = None,
        settings: AgentSettings | None = None,
        stats: AgentStats | None = None,
        log: Callable[[str], None] = lambda text: None,
    ) -> None:
        if not members:
            raise ValueError("a placement agent needs at least one placement member")
        self.host = host
        self.node_id = host.node_id
        self.clock = clock
        self.send = send
        self.members = tuple(sorted(members))
        self.inspector = inspector
        self.identity = identity or NodeIdentity(f"n{self.node_id}", f"n{self.node_id}")
        self.settings = settings or AgentSettings()
        self.stats = stats or AgentStats()
        self.log = log
        self.target = self.members[(self.node_id - 1) % len(self.members)]
        """The member requests go to (the believed leader)."""
        self.registered = False
        self.stopped = False
        self._next_request = 1
        self._in_flight: _InFlight | None = None
        self._tried: dict[tuple[int, Step], float] = {}
        self._commit_tried: dict[int, float] = {}
        self._timer: TimerHandle | None = None
        self._reported: dict[int, _Reported] = {}
        self._wanted: frozenset[int] = frozenset()
        self._hosted: tuple[HostedPeer, ...] | None = None
        self._hosted_at = -1e18
        self._hosted_view: tuple[int, tuple[HostedPeer, ...]] = (-1, ())
        """The hosted list as of a `RegionHost.shape_version`."""

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin the rounds."""
        self._timer = self.clock.call_later(self.settings.heartbeat_interval, self._on_timer)

    def stop(self) -> None:
        """No more rounds, and replies are ignored."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def _on_timer(self) -> None:
        if self.stopped or self.host.stopped:
            return
        if not self.host.buggify("agent.round_skipped"):  # buggify: a starved agent
            self.round()
        self._timer = self.clock.call_later(self.settings.heartbeat_interval, self._on_timer)

    def round(self) -> None:
        """One round: heartbeats unless a request is still in flight, then merges."""
        self.stats.rounds += 1
        now = self.clock.now()
        flight = self._in_flight
        if flight is not None and now - flight.sent_at >= self.settings.request_timeout:
            self.stats.timeouts += 1
            self._hosted = None  # a gap: the driver may have removed replicas meanwhile
            self._in_flight = None
            self._next_member(flight.member)
        if self._in_flight is None:
            self._send_heartbeats(now)
        self._commit_merges(now)
        self._forget_tries(now)

    def _next_member(self, after: NodeId) -> None:
        i = self.members.index(after) if after in self.members else -1
        self.target = self.members[(i + 1) % len(self.members)]

    # -- heartbeats ---------------------------------------------------------------------

    def _send_heartbeats(self, now: float) -> None:
        commands: list[Command] = []
        if not self.registered:
            ident = self.identity
            add = AddNode(self.node_id, ident.peer_address, ident.client_address, ident.labels, 0)
            commands.append(add)
        flight = _InFlight(PlacementRequest(self.node_id, 0, ()), self.target, now)
        commands.append(self._node_heartbeat(now, flight))
        commands.extend(RegionHeartbeat(r, 0) for r in self._region_reports(now, flight))
        flight.request = PlacementRequest(self.node_id, self._next_request, tuple(commands))
        self._next_request += 1
        self._in_flight = flight
        self.stats.requests += 1
        self.send(self.target, flight.request)

    def _node_heartbeat(self, now: float, flight: _InFlight) -> NodeHeartbeat:
        """The node heartbeat; it lists the hosted replicas only when they changed since
        the last served heartbeat, or `report_refresh` after it (the driver looks for
        stale replicas in the list; an empty one tells it nothing)."""
        # A peer whose description does not name it yet is catching up from a snapshot
        # older than its own addition: it is no stale peer, so it is not reported.
        host = self.host
        if self._hosted_view[0] != host.shape_version:
            peers = [host.peers[i] for i in sorted(host.peers)]
            view = tuple(
                HostedPeer(p.region_id, p.peer_id, p.region.epoch.conf_ver)
                for p in peers
                if p.initialized and p.region.peer(p.peer_id) is not None
            )
            self._hosted_view = (host.shape_version, view)
            # Regions no longer hosted here (moved, merged) need no memory of reports.
            self._reported = {r: v for r, v in self._reported.items() if r in host.peers}
        hosted = self._hosted_view[1]
        leaders = sum(p.replica.is_leader for p in host.peers.values())
        stats = NodeStats(region_count=len(host.peers), leader_count=leaders)
        if hosted == self._hosted and now - self._hosted_at < self.settings.report_refresh:
            return NodeHeartbeat(self.node_id, 0, stats, ())
        flight.hosted = hosted
        return NodeHeartbeat(self.node_id, 0, stats, hosted)

    def _region_reports(self, now: float, flight: _InFlight) -> list[RegionReport]:
        """Reports of the regions led here that changed since their last served report
        (`_changed`), that an operator works on (`wanted`), or that were last reported
        `report_refresh` ago. An idle region costs a few attribute reads a round, so
        1,000 quiescent regions do not keep the placement group busy."""
        reports = []
        refresh, slack = self.settings.report_refresh, self.settings.change_slack
        for region_id in sorted(self.host.peers):
            peer = self.host.peers[region_id]
            if not peer.replica.is_leader or not peer.initialized:
                continue
            if peer.machine.merging_into is not None:
                continue  # frozen: its merge, not the driver, decides what happens next
            raw = peer.replica.raw
            quick = (
                peer.replica.applied,
                raw.term,
                peer.region,
                tuple(raw.peer_matches().values()),
            )
            last = self._reported.get(region_id)
            due = last is None or region_id in self._wanted or now - last.at >= refresh
            if not due and last is not None and last.quick == quick:
                continue
            report = self.inspector.report(peer)
            if not due and last is not None and not _changed(last.report, report, slack):
                self._reported[region_id] = _Reported(quick, last.report, last.at)
                continue
            flight.reported[region_id] = _Reported(quick, report, now)
            reports.append(report)
        return reports

    def on_reply(self, reply: PlacementReply) -> None:
        """A member answered (late, duplicated and foreign replies are ignored)."""
        flight = self._in_flight
        if self.stopped or flight is None or reply.request_id != flight.request.request_id:
            return
        self._in_flight = None
        if not reply.served:
            self.stats.refused += 1
            self._hosted = None
            if reply.leader in self.members and reply.leader != reply.member:
                self.target = reply.leader
            elif reply.leader == NONE:
                self._next_member(reply.member)
            return
        self.stats.served += 1
        self.target = reply.member
        self._reported.update(flight.reported)
        if flight.hosted is not None:
            self._hosted, self._hosted_at = flight.hosted, flight.sent_at
        for command, result in zip(flight.request.commands, reply.results, strict=False):
            self._on_result(command, result)
        missing = self._wanted - flight.reported.keys()
        if any(self._leads(r) for r in missing) and not self.stopped:
            # An operator waits for a report this request did not carry: send it now
            # rather than a heartbeat interval later.
            self.clock.call_later(0.0, self._report_wanted)

    def _leads(self, region_id: int) -> bool:
        peer = self.host.peers.get(region_id)
        return peer is not None and peer.replica.is_leader

    def _report_wanted(self) -> None:
        if not self.stopped and self._in_flight is None:
            self._send_heartbeats(self.clock.now())

    def _on_result(self, command: Command, result: Result) -> None:
        match command, result:
            case AddNode(), Ack():
                self.registered = True
                self.stats.registrations += 1
            case NodeHeartbeat(), NodeHeartbeatReply(known=False):
                self.registered = False
                self._forget_reports()
            case NodeHeartbeat(), NodeHeartbeatReply(stale_peers=stale, wanted=wanted):
                self._wanted = frozenset(wanted)
                for p in stale:
                    self.stats.stale_peers += 1
                    self.log(f"pd n{self.node_id} destroy stale r{p.region_id} peer {p.peer_id}")
                    self.host.destroy_stale_peer(p.region_id, p.peer_id)
            case RegionHeartbeat(report=report), RegionHeartbeatReply(step=step):
                if step is not None:
                    self.execute(report.region.id, step)

    # -- steps --------------------------------------------------------------------------

    def execute(self, region_id: int, step: Step) -> None:
        """Execute `step` on this node's leader of `region_id`, unless it has visibly
        happened, the region is busy merging, or it was executed within `step_retry`."""
        peer = self.host.peers.get(region_id)
        if peer is None or not peer.replica.is_leader or self._busy(region_id):
            return
        now = self.clock.now()
        key = (region_id, step)
        if now - self._tried.get(key, -1e18) < self.settings.step_retry:
            return
        action = self._action(peer, step)
        if action is None:
            return
        self._tried[key] = now
        name = type(step).__name__
        self.stats.steps[name] = self.stats.steps.get(name, 0) + 1
        self.log(f"pd n{self.node_id} r{region_id} {name}")
        if self.host.buggify("agent.step_late"):  # the step runs after the driver moved on
            self.clock.call_later(0.2, action)
            return
        action()

    def _busy(self, region_id: int) -> bool:
        """Whether a local replica is frozen into `region_id`, or is it (see the docs)."""
        return any(
            p.machine.merging_into is not None
            and (p.machine.merging_into == region_id or p.region_id == region_id)
            for p in self.host.peers.values()
        )

    def _action(self, peer: RegionPeer, step: Step) -> Callable[[], None] | None:
        """What executing `step` on leader `peer` means now (None: nothing to do)."""
        host, region, rid = self.host, peer.region, peer.region_id
        match step:
            case AddLearner(node_id=n, peer_id=p) if region.peer(p) is None:
                kind = ConfChangeType.ADD_LEARNER
                return lambda: host.change_peer(rid, kind, Peer(p, n), _ignore)
            case PromoteLearner(node_id=n, peer_id=p) if _role(region, p) is PeerRole.LEARNER:
                kind = ConfChangeType.ADD_NODE
                return lambda: host.change_peer(rid, kind, Peer(p, n), _ignore)
            case RemovePeer(node_id=n, peer_id=p) if region.peer(p) is not None:
                kind = ConfChangeType.REMOVE_NODE
                return lambda: host.change_peer(rid, kind, Peer(p, n), _ignore)
            case TransferLeader(peer_id=p) if p != peer.peer_id:
                return lambda: host.transfer_leader(rid, p)
            case SplitRegion() if step.epoch == region.epoch:
                return self._split(peer, step)
            case MergeRegion() if step.source_epoch == region.epoch and rid == step.source_id:
                return self._prepare_merge(step)
        return None

    def _split(self, peer: RegionPeer, step: SplitRegion) -> Callable[[], None] | None:
        at = step.split_key if step.policy is SplitPolicy.KEY else self.inspector.split_key(peer)
        if at is None:
            return None
        rid, ids = peer.region_id, step.new_peer_ids
        return lambda: self.host.split(rid, step.epoch, at, step.new_region_id, ids, _ignore)

    # -- merges -------------------------------------------------------------------------

    def _prepare_merge(self, step: MergeRegion) -> Callable[[], None] | None:
        target = self.host.peers.get(step.target_id)
        if target is not None and (
            target.machine.merging_into is not None
            or target.region.epoch.version > step.target_epoch.version
        ):
            return None  # the target moved on, or is merging away itself

        def prepare() -> None:
            self.stats.merges_prepared += 1
            self.host.prepare_merge(step.source_id, step.source_epoch, step.target_id, _ignore)

        return prepare

    def _commit_merges(self, now: float) -> None:
        """Commit every merge whose source is frozen here into a target led from here."""
        if self.host.buggify("agent.merge_commit_late"):
            return  # buggify: this round proposes none (a later one does)
        for region_id in sorted(self.host.peers):
            source = self.host.peers[region_id]
            target_id = source.machine.merging_into
            target = None if target_id is None else self.host.peers.get(target_id)
            if (
                target is None
                or not target.replica.is_leader
                or not target.initialized
                or target.machine.merging_into is not None
                or now - self._commit_tried.get(region_id, -1e18) < self.settings.step_retry
            ):
                continue
            self._commit_tried[region_id] = now
            self.stats.merges_committed += 1
            self.log(f"pd n{self.node_id} commit-merge r{region_id} into r{target.region_id}")
            data = source.machine.inner.snapshot()
            self.host.commit_merge(
                target.region_id, target.region.epoch, source.region, data, _ignore
            )

    def _forget_reports(self) -> None:
        """The driver does not know this node (its metadata was reset): tell it all."""
        self._reported.clear()
        self._hosted = None

    def _forget_tries(self, now: float) -> None:
        retry = self.settings.step_retry
        self._tried = {k: t for k, t in self._tried.items() if now - t < retry}
        self._commit_tried = {
            k: t for k, t in self._commit_tried.items() if now - t < retry and k in self.host.peers
        }


def _changed(before: RegionReport, now: RegionReport, slack: tuple[int, int, int]) -> bool:
    """Whether `now` tells the driver something `before` did not: another description,
    leader, term or lagging peer, or a size, key count or write rate that moved by more
    than an eighth plus `slack` (smaller drifts wait for the refresh)."""
    if (
        before.region != now.region
        or before.leader_peer_id != now.leader_peer_id
        or before.term != now.term
        or before.pending_peers != now.pending_peers
        or before.down_peers != now.down_peers
    ):
        return True
    pairs = (
        (before.approximate_size, now.approximate_size),
        (before.approximate_keys, now.approximate_keys),
        (before.write_bytes_per_s, now.write_bytes_per_s),
    )
    return any(abs(a - b) > max(a, b) // 8 + d for (a, b), d in zip(pairs, slack, strict=True))


def _role(region: Region, peer_id: int) -> PeerRole | None:
    peer = region.peer(peer_id)
    return None if peer is None else peer.role
