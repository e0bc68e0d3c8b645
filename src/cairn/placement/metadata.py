"""The placement metadata: a deterministic state machine replicated by the placement group.

Theory of operation. The placement group's Raft log holds encoded `Command`s; every replica
applies them in log order with `ClusterMetadata.apply` and so holds the same nodes, regions,
rules, operators, id allocator and event log. Nothing here reads a clock or a random
source: time is the largest `now_ms` any command has carried (`clock_ms`), and every loop
runs over ids in sorted order, so the same commands in the same order give byte-identical
`snapshot()`s, and a replica restored from a snapshot continues exactly as the original.

Region heartbeats are refused when their epoch is stale (`RegionMap.update`). When a split
ordered by an operator is reported by one half, the other half is inferred from the
operator's preallocated ids, so the region map never shows a gap between the two reports.
A region dropped from the map because a newer one overlaps it (a merge) ends its operator.
The periodic `Tick` marks silent nodes down, ends operators that succeeded, timed out or
can no longer succeed, and runs the reconcile loops (`scheduler.run_checkers`), returning
the operators it started; the region leaders pick up their steps in heartbeat replies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cairn.meta.region import Region
from cairn.placement.codec import Codec
from cairn.placement.commands import (
    CODEC_TABLE,
    Ack,
    AclDeleted,
    AddNode,
    AllocIds,
    Command,
    DelAclUsers,
    DelTenant,
    IdRange,
    NodeHeartbeat,
    NodeHeartbeatReply,
    RegionHeartbeat,
    RegionHeartbeatReply,
    ReportTenantUsage,
    RequestOperator,
    RequestReply,
    Result,
    SetAclUser,
    SetConfig,
    SetFunctions,
    SetNodeAdmin,
    SetRules,
    SetTenant,
    TenantTable,
    Tick,
    TickResult,
)
from cairn.placement.config import InvalidConfigError, PlacementConfig
from cairn.placement.context import ScheduleContext
from cairn.placement.model import (
    Event,
    EventKind,
    HostedPeer,
    InvalidRulesError,
    NodeAdmin,
    NodeInfo,
    PlacementRules,
    RegionInfo,
    RegionReport,
)
from cairn.placement.operators import Operator, OperatorStatus
from cairn.placement.requests import RequestRefused, start_requested
from cairn.placement.scheduler import run_checkers
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    SplitRegion,
    TransferLeader,
)
from cairn.placement.tenants import RegionUsage, TenantBook, TenantSpec
from cairn.shard.region_map import RegionMap

_ADMIN_EVENTS = {
    NodeAdmin.ACTIVE: EventKind.NODE_ACTIVE,
    NodeAdmin.DRAINING: EventKind.NODE_DRAINING,
    NodeAdmin.REMOVED: EventKind.NODE_REMOVED,
}
_END_EVENTS = {
    OperatorStatus.SUCCEEDED: EventKind.OPERATOR_FINISHED,
    OperatorStatus.CANCELLED: EventKind.OPERATOR_CANCELLED,
    OperatorStatus.TIMED_OUT: EventKind.OPERATOR_TIMED_OUT,
}


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """The whole state, as a snapshot holds it (every collection sorted by id or key)."""

    clock_ms: int
    next_id: int
    next_operator_id: int
    event_seq: int
    refused_heartbeats: int
    config: PlacementConfig
    rules: PlacementRules
    nodes: tuple[NodeInfo, ...]
    regions: tuple[RegionInfo, ...]
    operators: tuple[Operator, ...]
    history: tuple[Operator, ...]
    events: tuple[Event, ...]
    changes: int = 0
    checked_changes: int = -1
    checked_ms: int = 0
    acl_users: tuple[tuple[str, str], ...] = ()
    """ACL users by name: (name, canonical rules), sorted (appended: older snapshots
    decode without it)."""
    acl_version: int = 0
    tenants: tuple[TenantSpec, ...] = ()
    """Tenants by name (appended: older snapshots decode without them)."""
    tenant_usage: tuple[RegionUsage, ...] = ()
    """The latest usage report of each region, by region id."""
    functions: tuple[tuple[str, bytes], ...] = ()
    """FUNCTION libraries: (name, code) in load order (appended: older snapshots decode
    without them)."""
    function_version: int = 0


SNAPSHOT_CODEC = Codec(
    {**CODEC_TABLE, 50: RegionInfo, 51: NodeInfo, 52: EventKind, 53: Event, 60: MetadataImage}
)
"""The codec of snapshots: every placement type plus the state's own records."""


class ClusterMetadata:
    """The placement driver's replicated state and the command interpreter over it."""

    def __init__(
        self, config: PlacementConfig | None = None, rules: PlacementRules | None = None
    ) -> None:
        self.config = config or PlacementConfig()
        self.config.validate()
        self.rules = rules or PlacementRules()
        self.rules.validate()
        self.clock_ms = 0
        self.next_id = 1
        self.next_operator_id = 1
        self.event_seq = 0
        self.refused_heartbeats = 0
        self.nodes: dict[int, NodeInfo] = {}
        self.region_map = RegionMap()
        self.region_infos: dict[int, RegionInfo] = {}
        self.operators: dict[int, Operator] = {}
        """Operators in flight by id."""
        self.history: list[Operator] = []
        self.events: list[Event] = []
        self.changes = 0
        """Counts the changes the reconcile loops read (see `_tick`)."""
        self.checked_changes = -1
        """`changes` when the loops last ran and started nothing (-1: run at the next tick)."""
        self.checked_ms = 0
        self.acl_users: dict[str, str] = {}
        """ACL users set through ACL SETUSER: name -> canonical rules (`cairn.store.acl`).
        Opaque here: the nodes parse them; the metadata only orders and keeps them."""
        self.acl_version = 0
        """Grows with every applied change to `acl_users` (nodes adopt newer tables)."""
        self.tenants = TenantBook()
        """Tenants and their usage reports (`cairn.placement.tenants`)."""
        self.functions: tuple[tuple[str, bytes], ...] = ()
        """FUNCTION libraries (name, code), opaque here: nodes parse and check them."""
        self.function_version = 0
        """Grows with every applied change to `functions` (nodes adopt newer tables)."""

    # --- the command interpreter -----------------------------------------------------------

    def apply(self, command: Command) -> Result:
        """Apply one committed command; its result goes back to whoever proposed it."""
        match command:
            case Tick(now_ms=now):
                self._advance_clock(now)
                return self._tick()
            case RegionHeartbeat(report=report, now_ms=now):
                self._advance_clock(now)
                return self._region_heartbeat(report)
            case NodeHeartbeat():
                self._advance_clock(command.now_ms)
                return self._node_heartbeat(command)
            case AddNode():
                self._advance_clock(command.now_ms)
                return self._add_node(command)
            case SetNodeAdmin():
                self._advance_clock(command.now_ms)
                return self._set_node_admin(command)
            case SetRules(rules=rules, now_ms=now):
                self._advance_clock(now)
                return self._set_rules(rules)
            case SetConfig(config=config, now_ms=now):
                self._advance_clock(now)
                return self._set_config(config)
            case AllocIds(count=count):
                return self._alloc_range(count)
            case SetAclUser():
                self._advance_clock(command.now_ms)
                return self._set_acl_user(command)
            case DelAclUsers():
                self._advance_clock(command.now_ms)
                return self._del_acl_users(command.names)
            case SetFunctions():
                self._advance_clock(command.now_ms)
                return self._set_functions(command)
            case SetTenant() | DelTenant() | ReportTenantUsage():
                self._advance_clock(command.now_ms)
                return self._tenant_command(command)
            case RequestOperator():
                self._advance_clock(command.now_ms)
                return self._request_operator(command)
            case _:
                raise TypeError(f"not a placement command: {command!r}")

    def _advance_clock(self, now_ms: int) -> None:
        self.clock_ms = max(self.clock_ms, now_ms)

    def alloc_ids(self, count: int) -> int:
        """Reserve `count` ids; the first one."""
        first = self.next_id
        self.next_id += count
        return first

    def _alloc_operator_id(self) -> int:
        self.next_operator_id += 1
        return self.next_operator_id - 1

    def _alloc_range(self, count: int) -> Result:
        if count < 1:
            return Ack(False, f"cannot allocate {count} ids")
        return IdRange(self.alloc_ids(count), count)

    def _record(self, kind: EventKind, reason: str, **where: int | None) -> None:
        self.changes += 1  # every event is news to the reconcile loops
        self.event_seq += 1
        event = Event(self.event_seq, self.clock_ms, kind, reason, **where)
        self.events.append(event)
        excess = len(self.events) - self.config.event_log_size
        if excess > 0:
            del self.events[:excess]

    # --- nodes -----------------------------------------------------------------------------

    def _add_node(self, c: AddNode) -> Result:
        old = self.nodes.get(c.node_id)
        if old is not None and old.admin is NodeAdmin.REMOVED:
            return Ack(False, f"node {c.node_id} was removed; ids are not reused")
        labels = tuple(sorted(c.labels))
        if old is not None and old.client_address and not c.client_address:
            # the placement leader's placeholder for a founder (no client address, no
            # labels) never overwrites the node's own registration, applied first
            return Ack(True, "known")
        if old is not None:
            self.nodes[c.node_id] = replace(
                old, peer_address=c.peer_address, client_address=c.client_address, labels=labels
            )
            self.changes += old.labels != labels
            return Ack(True, "updated")
        self.nodes[c.node_id] = NodeInfo(
            c.node_id,
            c.peer_address,
            c.client_address,
            labels,
            last_heartbeat_ms=self.clock_ms,
            joined_ms=self.clock_ms,
        )
        self._record(EventKind.NODE_ADDED, f"{c.peer_address} {dict(labels)}", node_id=c.node_id)
        return Ack(True)

    def _node_heartbeat(self, c: NodeHeartbeat) -> Result:
        node = self.nodes.get(c.node_id)
        if node is None or node.admin is NodeAdmin.REMOVED:
            return NodeHeartbeatReply(known=False)
        if node.down:
            silent = self.clock_ms - node.last_heartbeat_ms
            self._record(EventKind.NODE_UP, f"heartbeat after {silent} ms", node_id=node.id)
        self.changes += node.stats != c.stats
        self.nodes[c.node_id] = replace(
            node, down=False, last_heartbeat_ms=self.clock_ms, stats=c.stats
        )
        stale = tuple(p for p in c.hosted if self._is_stale_peer(p))
        for p in stale:
            why = f"peer {p.peer_id} is no member of region {p.region_id}: destroy it"
            self._record(EventKind.STALE_PEER, why, region_id=p.region_id, node_id=node.id)
        return NodeHeartbeatReply(known=True, stale_peers=stale, wanted=self._wanted(node.id))

    def _wanted(self, node_id: int) -> tuple[int, ...]:
        """The regions led from `node_id` (as last reported) that an operator works on."""
        wanted = set()
        for op in self.operators.values():
            for region_id in (op.region_id, *op.related_region_ids):
                info = self.region_infos.get(region_id)
                if info is not None and info.report.leader_node_id == node_id:
                    wanted.add(region_id)
        return tuple(sorted(wanted))

    def _is_stale_peer(self, hosted: HostedPeer) -> bool:
        """A peer removed from its region while its node was away (see docs/placement.md)."""
        region = self.region_map.get(hosted.region_id)
        return (
            region is not None
            and region.peer(hosted.peer_id) is None
            and hosted.conf_ver < region.epoch.conf_ver
        )

    def _set_node_admin(self, c: SetNodeAdmin) -> Result:
        node = self.nodes.get(c.node_id)
        if node is None:
            return Ack(False, f"unknown node {c.node_id}")
        if node.admin is NodeAdmin.REMOVED and c.admin is not NodeAdmin.REMOVED:
            return Ack(False, f"node {c.node_id} was removed")
        if node.admin is c.admin:
            return Ack(True, "unchanged")
        self.nodes[c.node_id] = replace(node, admin=c.admin, drained=False)
        self._record(_ADMIN_EVENTS[c.admin], c.reason or "by request", node_id=c.node_id)
        return Ack(True)

    def _set_rules(self, rules: PlacementRules) -> Result:
        try:
            rules.validate()
        except InvalidRulesError as exc:
            return Ack(False, str(exc))
        self.rules = rules
        what = f"replicas {rules.replicas}, label {rules.location_label!r}"
        self._record(EventKind.RULES_CHANGED, f"{what}, {len(rules.ranges)} range rules")
        return Ack(True)

    def _set_config(self, config: PlacementConfig) -> Result:
        try:
            config.validate()
        except InvalidConfigError as exc:
            return Ack(False, str(exc))
        self.config = config
        self._record(EventKind.CONFIG_CHANGED, "by request")
        return Ack(True)

    # --- ACL users -------------------------------------------------------------------------

    def _set_acl_user(self, c: SetAclUser) -> Result:
        if self.acl_users.get(c.name, "") != c.expected:
            return Ack(False, "changed concurrently")
        self.acl_users[c.name] = c.rules
        self.acl_version += 1
        return Ack(True)

    def _set_functions(self, c: SetFunctions) -> Result:
        if c.base != self.function_version:
            return Ack(False, "changed concurrently")
        self.functions = c.libraries
        self.function_version += 1
        return Ack(True)

    def _del_acl_users(self, names: tuple[str, ...]) -> Result:
        gone = [n for n in dict.fromkeys(names) if self.acl_users.pop(n, None) is not None]
        if gone:
            self.acl_version += 1
        return AclDeleted(len(gone))

    # --- tenants ---------------------------------------------------------------------------

    def _tenant_command(self, c: SetTenant | DelTenant | ReportTenantUsage) -> Result:
        book = self.tenants
        match c:
            case SetTenant():
                refusal = book.refusal(c.spec, self.acl_users)
                if refusal is not None:
                    return Ack(False, refusal)
                book.specs[c.spec.name] = c.spec
                self.acl_users[c.spec.name] = c.rules
                self.acl_version += 1
                return Ack(True)
            case DelTenant():
                if book.specs.pop(c.name, None) is None:
                    return Ack(False, f"no tenant '{c.name}'")
                if self.acl_users.pop(c.name, None) is not None:
                    self.acl_version += 1
                book.report((), set(self.region_infos))
                return Ack(True)
            case ReportTenantUsage():
                book.report(c.regions, set(self.region_infos))
                return TenantTable(book.table())

    # --- regions ---------------------------------------------------------------------------

    def _region_heartbeat(self, report: RegionReport) -> Result:
        region = report.region
        self.next_id = max(self.next_id, region.id + 1, *(p.id + 1 for p in region.peers))
        before = {i: self.region_map.get(i) for i in self._split_parents(region.id)}
        old = self.region_map.get(region.id)
        prior = self.region_infos.get(region.id)
        if (
            prior is not None
            and prior.report.region.epoch == region.epoch
            and report.term < prior.report.term
        ):
            self.refused_heartbeats += 1
            why = f"stale leader: term {report.term} < {prior.report.term}"
            return RegionHeartbeatReply(False, reason=why)
        if not self.region_map.update(region):
            self.refused_heartbeats += 1
            return RegionHeartbeatReply(False, reason="stale epoch: a newer region is known")
        self._store_report(report, old)
        self._infer_split_siblings(report, old, before)
        self._forget_dropped(region)
        op = self._operator_of(region.id)
        if op is not None and op.region_id != region.id:
            self._check_merge_target(op, region)
            return RegionHeartbeatReply(True)
        if op is None:
            return RegionHeartbeatReply(True)
        op = self._update_operator(op.advance(report, self.clock_ms))
        if op.finished:
            return RegionHeartbeatReply(True)
        return RegionHeartbeatReply(True, op.next_step(report), op.id)

    def _check_merge_target(self, op: Operator, target: Region) -> None:
        """Cancel a merge whose target changed since it was ordered (the leader refuses it)."""
        step = op.steps[op.step_index] if op.step_index < len(op.steps) else None
        if isinstance(step, MergeRegion) and step.target_epoch != target.epoch:
            why = f"merge target {target.id} changed: epoch {target.epoch}"
            self._update_operator(op.finish(OperatorStatus.CANCELLED, self.clock_ms, why))

    def _store_report(self, report: RegionReport, old: Region | None) -> None:
        region = report.region
        prior = self.region_infos.get(region.id)
        same_range = old is not None and (old.start, old.end) == (region.start, region.end)
        born = prior.born_ms if prior is not None and same_range else self.clock_ms
        if prior is None:
            self._record(
                EventKind.REGION_NEW, f"first report, epoch {region.epoch}", region_id=region.id
            )
        elif replace(prior.report, term=report.term) != report or prior.born_ms != born:
            self.changes += 1
        self.region_infos[region.id] = RegionInfo(report, self.clock_ms, born)

    def _split_parents(self, region_id: int) -> list[int]:
        """Regions with a split in flight whose new half is `region_id`."""
        return [
            op.region_id
            for op in self._running()
            if any(isinstance(s, SplitRegion) and s.new_region_id == region_id for s in op.steps)
        ]

    def _infer_split_siblings(
        self, report: RegionReport, old: Region | None, before: dict[int, Region | None]
    ) -> None:
        region = report.region
        split = _current_split(self._operator_of(region.id))
        if (
            split is not None
            and old is not None
            and old.epoch == split.epoch
            and region.epoch.version > split.epoch.version
            and region.end != old.end
        ):
            ids = split.new_peer_ids
            peers = tuple(replace(p, id=i) for p, i in zip(old.peers, ids, strict=True))
            right = Region(split.new_region_id, region.end, old.end, region.epoch, peers)
            self._adopt_inferred(right, report, old)
        for parent_id, parent in sorted(before.items()):
            parent_op = self._operator_of(parent_id)
            split = _current_split(parent_op)
            if parent is None or split is None or parent.epoch != split.epoch:
                continue
            left = Region(parent_id, parent.start, region.start, region.epoch, parent.peers)
            self._adopt_inferred(left, report, parent)

    def _adopt_inferred(self, half: Region, seen: RegionReport, parent: Region) -> None:
        """Record the half of a split that has not reported yet, as the reported half implies."""
        if not self.region_map.update(half):
            return
        node = seen.leader_node_id
        leader = next((p.id for p in half.peers if p.node_id == node), half.peers[0].id)
        parent_info = self.region_infos.get(parent.id)
        size = 0 if parent_info is None else parent_info.report.approximate_size
        keys = 0 if parent_info is None else parent_info.report.approximate_keys
        guess = RegionReport(
            half,
            leader,
            approximate_size=max(0, size - seen.approximate_size),
            approximate_keys=max(0, keys - seen.approximate_keys),
        )
        self.region_infos[half.id] = RegionInfo(guess, self.clock_ms, self.clock_ms)
        why = f"region {parent.id} split at {half.start if half.id != parent.id else half.end!r}"
        self._record(EventKind.REGION_SPLIT, why, region_id=half.id)

    def _forget_dropped(self, grown: Region) -> None:
        """Drop the records of regions the map no longer holds (a newer region overlapped)."""
        if len(self.region_infos) == len(self.region_map):
            return  # every record has its region (the map holds no region without one)
        for region_id in sorted(self.region_infos):
            if self.region_map.get(region_id) is not None:
                continue
            del self.region_infos[region_id]
            why = f"covered by region {grown.id} at version {grown.epoch.version}"
            self._record(EventKind.REGION_MERGED, why, region_id=region_id)
            op = self._operator_of(region_id)
            if op is not None and op.region_id == region_id:
                self._update_operator(op.advance(None, self.clock_ms))

    # --- operators -------------------------------------------------------------------------

    def _running(self) -> list[Operator]:
        return [self.operators[i] for i in sorted(self.operators)]

    def _operator_of(self, region_id: int) -> Operator | None:
        """The operator in flight on or depending on region `region_id`."""
        return next((op for op in self._running() if region_id in op.regions()), None)

    def _update_operator(self, op: Operator) -> Operator:
        """Store `op`'s progress; move it to the history with an event when it has ended."""
        if not op.finished:
            self.changes += self.operators.get(op.id) != op
            self.operators[op.id] = op
            return op
        self.operators.pop(op.id, None)
        self.history.append(op)
        excess = len(self.history) - self.config.operator_history_size
        if excess > 0:
            del self.history[:excess]
        self._record(
            _END_EVENTS[op.status],
            f"{op.outcome}: {op.describe()}",
            region_id=op.region_id,
            operator_id=op.id,
        )
        return op

    def _check_operators(self) -> None:
        for op in self._running():
            info = self.region_infos.get(op.region_id)
            op = op.advance(None if info is None else info.report, self.clock_ms)
            op = op.check_timeout(self.clock_ms)
            dead = self._dead_target(op)
            if dead is not None and not op.finished:
                op = op.finish(OperatorStatus.CANCELLED, self.clock_ms, dead)
            self._update_operator(op)

    def _dead_target(self, op: Operator) -> str | None:
        """Why `op` cannot finish: a node it moves a replica or leader to is gone."""
        for step in op.pending_steps():
            if isinstance(step, AddLearner | PromoteLearner | TransferLeader):
                node = self.nodes.get(step.node_id)
                if node is None or node.down or node.admin is NodeAdmin.REMOVED:
                    return f"target node {step.node_id} is gone"
        return None

    def _context(self) -> ScheduleContext:
        """The view the checkers (and requests) decide from, now."""
        running: dict[int, Operator] = {}
        for op in self._running():
            for region_id in op.regions():
                running[region_id] = op
        return ScheduleContext(
            now_ms=self.clock_ms,
            config=self.config,
            rules=self.rules,
            nodes=dict(sorted(self.nodes.items())),
            regions=[self.region_infos[r.id] for r in self.region_map],
            running=running,
            alloc_ids=self.alloc_ids,
            alloc_operator_id=self._alloc_operator_id,
        )

    def _start_operators(self) -> list[Operator]:
        started = run_checkers(self._context())
        for op in started:
            self._created(op)
        return started

    def _created(self, op: Operator) -> None:
        self.operators[op.id] = op
        self._record(
            EventKind.OPERATOR_CREATED,
            f"{op.reason}: {op.describe()}",
            region_id=op.region_id,
            operator_id=op.id,
        )

    def _request_operator(self, c: RequestOperator) -> Result:
        """An operator asked for by hand (`cairn.placement.requests`): started or refused."""
        try:
            op = start_requested(self._context(), c)
        except RequestRefused as exc:
            return RequestReply(False, str(exc))
        self._created(op)
        return RequestReply(True, "started", op.id, op.describe())

    # --- the tick --------------------------------------------------------------------------

    def _tick(self) -> Result:
        """Liveness, operator progress and drains; then the reconcile loops, if anything
        they read changed since they last ran without starting an operator, or a patrol
        interval has passed (see `PlacementConfig.patrol_interval_ms`)."""
        self._check_liveness()
        self._check_operators()
        self._check_drained()
        idle = self.changes == self.checked_changes
        if idle and self.clock_ms - self.checked_ms < self.config.patrol_interval_ms:
            return TickResult(())
        started = self._start_operators()
        self.checked_ms = self.clock_ms
        self.checked_changes = -1 if started else self.changes
        return TickResult(tuple(started))

    def _check_liveness(self) -> None:
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            silent = self.clock_ms - node.last_heartbeat_ms
            if node.down or node.admin is NodeAdmin.REMOVED or silent <= self.config.down_after_ms:
                continue
            self.nodes[node_id] = replace(node, down=True)
            self._record(EventKind.NODE_DOWN, f"no heartbeat for {silent} ms", node_id=node_id)

    def _check_drained(self) -> None:
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.admin is not NodeAdmin.DRAINING or node.drained:
                continue
            if any(r.peer_on(node_id) is not None for r in self.region_map):
                continue
            self.nodes[node_id] = replace(node, drained=True)
            self._record(EventKind.NODE_DRAINED, "holds no replicas", node_id=node_id)

    # --- snapshots -------------------------------------------------------------------------

    def image(self) -> MetadataImage:
        """The whole state as one value."""
        return MetadataImage(
            clock_ms=self.clock_ms,
            next_id=self.next_id,
            next_operator_id=self.next_operator_id,
            event_seq=self.event_seq,
            refused_heartbeats=self.refused_heartbeats,
            config=self.config,
            rules=self.rules,
            nodes=tuple(self.nodes[i] for i in sorted(self.nodes)),
            regions=tuple(self.region_infos[r.id] for r in self.region_map),
            operators=tuple(self._running()),
            history=tuple(self.history),
            events=tuple(self.events),
            changes=self.changes,
            checked_changes=self.checked_changes,
            checked_ms=self.checked_ms,
            acl_users=tuple(sorted(self.acl_users.items())),
            acl_version=self.acl_version,
            tenants=tuple(self.tenants.specs[n] for n in sorted(self.tenants.specs)),
            tenant_usage=tuple(self.tenants.usage[r] for r in sorted(self.tenants.usage)),
            functions=self.functions,
            function_version=self.function_version,
        )

    def snapshot(self) -> bytes:
        """The whole state as bytes (the placement group's Raft snapshot)."""
        return SNAPSHOT_CODEC.encode(self.image())

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one `snapshot` wrote."""
        image = SNAPSHOT_CODEC.decode(data)
        if not isinstance(image, MetadataImage):
            raise ValueError("not a placement metadata snapshot")
        self.clock_ms = image.clock_ms
        self.next_id = image.next_id
        self.next_operator_id = image.next_operator_id
        self.event_seq = image.event_seq
        self.refused_heartbeats = image.refused_heartbeats
        self.config = image.config
        self.rules = image.rules
        self.nodes = {n.id: n for n in image.nodes}
        self.region_infos = {i.region.id: i for i in image.regions}
        self.region_map = RegionMap([i.region for i in image.regions])
        self.operators = {op.id: op for op in image.operators}
        self.history = list(image.history)
        self.events = list(image.events)
        self.changes = image.changes
        self.checked_changes = image.checked_changes
        self.checked_ms = image.checked_ms
        self.acl_users = dict(image.acl_users)
        self.acl_version = image.acl_version
        self.tenants = TenantBook()
        self.tenants.specs = {t.name: t for t in image.tenants}
        self.tenants.usage = {u.region_id: u for u in image.tenant_usage}
        self.functions = image.functions
        self.function_version = image.function_version


def _current_split(op: Operator | None) -> SplitRegion | None:
    """The split `op` is waiting for, if its current step is one."""
    if op is None or op.finished or op.step_index >= len(op.steps):
        return None
    step = op.steps[op.step_index]
    return step if isinstance(step, SplitRegion) else None
