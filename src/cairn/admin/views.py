"""The admin API's values: what `/v1/...` answers, as frozen dataclasses and their JSON.

These are the contract between an `AdminSource` (a node, the placement driver), the HTTP
server and `cairn ctl`: the server encodes them with `to_json`, the CLI decodes the answer
with `from_json` and renders the same values, so the two cannot drift apart. The shapes are
built around regions, nodes and events (not around today's single Raft group), so that a
node hosting many regions answers with more rows, not different ones.

`from_json` is strict about types and lenient about extra keys: a newer server may add
fields, an older CLI ignores them. A malformed document raises `SchemaError`.

Range keys (`Region.start`/`end`, range rules) travel as lowercase hex; the JSON of a region
also carries its slots and a readable range, derived on the way out and ignored on the
way in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cairn.meta.region import Region, bound_slot, is_slot_bound
from cairn.placement.model import PlacementRules, RangeRule
from cairn.shard.topology import owned_slots

_T = TypeVar("_T")
Json = dict[str, Any]


class SchemaError(ValueError):
    """A JSON document does not have the shape of the value it should describe."""


class Health(enum.StrEnum):
    """How well a region, or the whole cluster, can serve."""

    OK = "ok"
    DEGRADED = "degraded"
    """Serving, but something is wrong: no leader right now, a node down, too few replicas."""
    UNAVAILABLE = "unavailable"
    """Some keys cannot be served: a region lost its quorum, or no region covers them."""


class NodeStatus(enum.StrEnum):
    """A node as shown to people: up or down, and what the operator asked of it."""

    UP = "up"
    DOWN = "down"
    DRAINING = "draining"
    REMOVED = "removed"


# -- the values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeCounts:
    """How many nodes are in each state."""

    up: int = 0
    down: int = 0
    draining: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        """Every node the cluster knows, removed ones included."""
        return self.up + self.down + self.draining + self.removed


@dataclass(frozen=True, slots=True)
class StatusView:
    """`GET /v1/status`: the cluster in one value, and why it is not healthy if it is not."""

    cluster_id: str
    answered_by: int
    """The node whose admin server answered."""
    placement_running: bool
    """Whether a placement driver decides the layout (otherwise it is static)."""
    nodes: NodeCounts
    regions: int
    regions_with_leader: int
    health: Health
    problems: tuple[str, ...]
    """Why `health` is not ok, one short sentence each."""
    under_replicated: int
    operators_running: int
    last_event_seq: int
    rules: PlacementRules | None
    """The declared placement; None while no placement driver runs."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """`GET /v1/nodes`: one node. Counts are of the regions it hosts and leads."""

    id: int
    status: NodeStatus
    client_address: str | None
    peer_address: str | None
    labels: tuple[tuple[str, str], ...]
    regions: int
    leaders: int
    silent_ms: int | None
    """Time since its last heartbeat (None: not tracked by this source)."""
    capacity_bytes: int | None = None
    used_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class PeerView:
    """One replica of a region."""

    id: int
    node_id: int
    role: str
    """"voter" or "learner"."""


@dataclass(frozen=True, slots=True)
class RegionView:
    """`GET /v1/regions`: one region, its range ``[start, end)`` of range keys, its peers."""

    id: int
    start: bytes
    end: bytes
    version: int
    conf_ver: int
    peers: tuple[PeerView, ...]
    leader: int | None
    """The node id of its leader, if one is known."""
    health: Health
    approximate_size: int | None = None
    approximate_keys: int | None = None
    operator: str | None = None
    """What the placement driver is doing to it now, if anything."""

    def voter_nodes(self) -> tuple[int, ...]:
        """The nodes holding a voter."""
        return tuple(p.node_id for p in self.peers if p.role == "voter")

    def slots(self) -> range:
        """The hash slots this region answers for (see `cairn.shard.topology.owned_slots`)."""
        return owned_slots(Region(self.id, self.start, self.end))


@dataclass(frozen=True, slots=True)
class EventView:
    """One thing the placement driver saw or decided, and why (`reason`)."""

    seq: int
    time_ms: int
    kind: str
    reason: str
    region_id: int | None = None
    node_id: int | None = None
    operator_id: int | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    """`GET /v1/events?since=N&limit=M`: events numbered after `since`, oldest first."""

    events: tuple[EventView, ...]
    last_seq: int
    """The newest event's number in the whole log (ask again with `since=last_seq`)."""
    placement_running: bool


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The answer to an action: accepted, and what will happen."""

    message: str


# -- derived text -----------------------------------------------------------------------


def describe_bound(bound: bytes, *, end: bool = False) -> str:
    """A range key for people: `slot N`, or `slot N key 'k'` inside a slot, or the open end."""
    if not bound:
        return "end" if end else "start"
    slot = bound_slot(bound)
    if is_slot_bound(bound):
        return f"slot {slot}"
    return f"slot {slot} key {bound[2:]!r}"


def describe_slots(slots: range) -> str:
    """`first-last` (inclusive, as Redis writes slot ranges), or `-` for none."""
    if not slots:
        return "-"
    last = slots.stop - 1
    return str(slots.start) if slots.start == last else f"{slots.start}-{last}"


# -- JSON out ---------------------------------------------------------------------------


def rules_to_json(rules: PlacementRules) -> Json:
    """The body of `POST /v1/placement`, and the rules shown by status."""
    return {
        "replicas": rules.replicas,
        "location_label": rules.location_label,
        "ranges": [
            {
                "start": r.start.hex(),
                "end": r.end.hex(),
                "replicas": r.replicas,
                "location_label": r.location_label,
                "name": r.name,
            }
            for r in rules.ranges
        ],
    }


def status_to_json(s: StatusView) -> Json:
    """`GET /v1/status`."""
    counts = s.nodes
    return {
        "cluster_id": s.cluster_id,
        "answered_by": s.answered_by,
        "placement_running": s.placement_running,
        "nodes": {
            "total": counts.total,
            "up": counts.up,
            "down": counts.down,
            "draining": counts.draining,
            "removed": counts.removed,
        },
        "regions": s.regions,
        "regions_with_leader": s.regions_with_leader,
        "health": s.health.value,
        "problems": list(s.problems),
        "under_replicated": s.under_replicated,
        "operators_running": s.operators_running,
        "last_event_seq": s.last_event_seq,
        "rules": None if s.rules is None else rules_to_json(s.rules),
    }


def node_to_json(n: NodeView) -> Json:
    """One element of `GET /v1/nodes`."""
    return {
        "id": n.id,
        "status": n.status.value,
        "client_address": n.client_address,
        "peer_address": n.peer_address,
        "labels": dict(n.labels),
        "regions": n.regions,
        "leaders": n.leaders,
        "silent_ms": n.silent_ms,
        "capacity_bytes": n.capacity_bytes,
        "used_bytes": n.used_bytes,
    }


def region_to_json(r: RegionView) -> Json:
    """One element of `GET /v1/regions` (with its slots and readable range)."""
    slots = r.slots()
    return {
        "id": r.id,
        "start": r.start.hex(),
        "end": r.end.hex(),
        "range": f"{describe_bound(r.start)} .. {describe_bound(r.end, end=True)}",
        "slots": [slots.start, slots.stop - 1] if slots else None,
        "epoch": {"version": r.version, "conf_ver": r.conf_ver},
        "peers": [{"id": p.id, "node_id": p.node_id, "role": p.role} for p in r.peers],
        "leader": r.leader,
        "health": r.health.value,
        "approximate_size": r.approximate_size,
        "approximate_keys": r.approximate_keys,
        "operator": r.operator,
    }


def event_to_json(e: EventView) -> Json:
    """One element of `GET /v1/events`."""
    return {
        "seq": e.seq,
        "time_ms": e.time_ms,
        "kind": e.kind,
        "reason": e.reason,
        "region_id": e.region_id,
        "node_id": e.node_id,
        "operator_id": e.operator_id,
    }


def event_page_to_json(page: EventPage) -> Json:
    """`GET /v1/events`."""
    return {
        "events": [event_to_json(e) for e in page.events],
        "last_seq": page.last_seq,
        "placement_running": page.placement_running,
    }


# -- JSON in ----------------------------------------------------------------------------


def _get(doc: Mapping[str, Any], key: str, kind: type[_T], *, optional: bool = False) -> _T:
    if not isinstance(doc, Mapping):
        raise SchemaError(f"expected an object, got {type(doc).__name__}")
    if key not in doc:
        if optional:
            return None  # type: ignore[return-value]
        raise SchemaError(f"{key}: missing")
    value = doc[key]
    if value is None and optional:
        return None  # type: ignore[return-value]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise SchemaError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise SchemaError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _hex(doc: Mapping[str, Any], key: str) -> bytes:
    text = _get(doc, key, str)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SchemaError(f"{key}: {text!r} is not hex") from None


def _list(doc: Mapping[str, Any], key: str, item: Callable[[Any], _T]) -> tuple[_T, ...]:
    return tuple(item(x) for x in _get(doc, key, list))


def _enum(doc: Mapping[str, Any], key: str, kind: type[enum.StrEnum]) -> Any:
    text = _get(doc, key, str)
    try:
        return kind(text)
    except ValueError:
        raise SchemaError(f"{key}: unknown value {text!r}") from None


def rules_from_json(doc: Any) -> PlacementRules:
    """Placement rules from the body of `POST /v1/placement` (checked by `validate` too).

    `location_label` and the ranges may be left out: the defaults are "zone" and none.
    """
    if not isinstance(doc, Mapping):
        raise SchemaError("expected an object with replicas, location_label and ranges")
    ranges = _list(doc, "ranges", _range_rule) if doc.get("ranges") is not None else ()
    return PlacementRules(_get(doc, "replicas", int), _label(doc), ranges)


def _label(doc: Mapping[str, Any]) -> str:
    label = _get(doc, "location_label", str, optional=True)
    if label is None:
        return "zone"
    if not label:
        raise SchemaError("location_label: must not be empty")
    return label


def _range_rule(doc: Any) -> RangeRule:
    name = _get(doc, "name", str, optional=True) or ""
    start, end, replicas = _hex(doc, "start"), _hex(doc, "end"), _get(doc, "replicas", int)
    return RangeRule(start, end, replicas, _label(doc), name)


def status_from_json(doc: Any) -> StatusView:
    """The inverse of `status_to_json`."""
    counts = _get(doc, "nodes", dict)
    rules = doc.get("rules") if isinstance(doc, Mapping) else None
    return StatusView(
        cluster_id=_get(doc, "cluster_id", str),
        answered_by=_get(doc, "answered_by", int),
        placement_running=_get(doc, "placement_running", bool),
        nodes=NodeCounts(*(_get(counts, k, int) for k in ("up", "down", "draining", "removed"))),
        regions=_get(doc, "regions", int),
        regions_with_leader=_get(doc, "regions_with_leader", int),
        health=_enum(doc, "health", Health),
        problems=_list(doc, "problems", _text),
        under_replicated=_get(doc, "under_replicated", int),
        operators_running=_get(doc, "operators_running", int),
        last_event_seq=_get(doc, "last_event_seq", int),
        rules=None if rules is None else rules_from_json(rules),
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"expected a string, got {value!r}")
    return value


def node_from_json(doc: Any) -> NodeView:
    """The inverse of `node_to_json`."""
    labels = _get(doc, "labels", dict)
    return NodeView(
        id=_get(doc, "id", int),
        status=_enum(doc, "status", NodeStatus),
        client_address=_get(doc, "client_address", str, optional=True),
        peer_address=_get(doc, "peer_address", str, optional=True),
        labels=tuple(sorted((_text(k), _text(v)) for k, v in labels.items())),
        regions=_get(doc, "regions", int),
        leaders=_get(doc, "leaders", int),
        silent_ms=_get(doc, "silent_ms", int, optional=True),
        capacity_bytes=_get(doc, "capacity_bytes", int, optional=True),
        used_bytes=_get(doc, "used_bytes", int, optional=True),
    )


def _peer(doc: Any) -> PeerView:
    role = _get(doc, "role", str)
    if role not in ("voter", "learner"):
        raise SchemaError(f"role: expected voter or learner, got {role!r}")
    return PeerView(_get(doc, "id", int), _get(doc, "node_id", int), role)


def region_from_json(doc: Any) -> RegionView:
    """The inverse of `region_to_json` (the derived `range` and `slots` are ignored)."""
    epoch = _get(doc, "epoch", dict)
    start, end = _hex(doc, "start"), _hex(doc, "end")
    if end and start >= end:
        raise SchemaError(f"start {start.hex()!r} is not before end {end.hex()!r}")
    return RegionView(
        id=_get(doc, "id", int),
        start=start,
        end=end,
        version=_get(epoch, "version", int),
        conf_ver=_get(epoch, "conf_ver", int),
        peers=_list(doc, "peers", _peer),
        leader=_get(doc, "leader", int, optional=True),
        health=_enum(doc, "health", Health),
        approximate_size=_get(doc, "approximate_size", int, optional=True),
        approximate_keys=_get(doc, "approximate_keys", int, optional=True),
        operator=_get(doc, "operator", str, optional=True),
    )


def event_from_json(doc: Any) -> EventView:
    """The inverse of `event_to_json`."""
    return EventView(
        seq=_get(doc, "seq", int),
        time_ms=_get(doc, "time_ms", int),
        kind=_get(doc, "kind", str),
        reason=_get(doc, "reason", str),
        region_id=_get(doc, "region_id", int, optional=True),
        node_id=_get(doc, "node_id", int, optional=True),
        operator_id=_get(doc, "operator_id", int, optional=True),
    )


def event_page_from_json(doc: Any) -> EventPage:
    """The inverse of `event_page_to_json`."""
    return EventPage(
        events=_list(doc, "events", event_from_json),
        last_seq=_get(doc, "last_seq", int),
        placement_running=_get(doc, "placement_running", bool),
    )


def nodes_from_json(doc: Any) -> tuple[NodeView, ...]:
    """`GET /v1/nodes`: `{"nodes": [...]}`."""
    return _list(doc, "nodes", node_from_json)


def regions_from_json(doc: Any) -> tuple[RegionView, ...]:
    """`GET /v1/regions`: `{"regions": [...]}`."""
    return _list(doc, "regions", region_from_json)
