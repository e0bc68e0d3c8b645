"""The admin API's values as rich tables, for people (`cairn ctl` without `--json`).

Pure formatting: every function takes the values `cairn.admin.views` decodes and returns a
rich renderable or a string; nothing here talks to a server.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cairn.admin.views import (
    EventView,
    Health,
    NodeStatus,
    NodeView,
    RegionView,
    StatusView,
    describe_bound,
    describe_slots,
)
from cairn.meta.region import is_slot_bound
from cairn.placement.model import PlacementRules

_HEALTH_STYLE = {Health.OK: "green", Health.DEGRADED: "yellow", Health.UNAVAILABLE: "bold red"}
_NODE_STYLE = {
    NodeStatus.UP: "green",
    NodeStatus.DOWN: "bold red",
    NodeStatus.DRAINING: "yellow",
    NodeStatus.REMOVED: "dim",
}


def human_bytes(n: int | None) -> str:
    """`1.5 GiB`, or `-` when unknown."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def ago(ms: int | None) -> str:
    """`350 ms ago`, `12.0 s ago`, `5 min ago`, or `-` when unknown."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms ago"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s ago"
    return f"{ms // 60_000} min ago"


def wall_time(ms: int) -> str:
    """A timestamp in milliseconds as UTC `YYYY-MM-DD HH:MM:SS.mmm`."""
    stamp = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def health_text(health: Health) -> Text:
    """A health word in its colour."""
    return Text(health.value, style=_HEALTH_STYLE[health])


def rules_text(rules: PlacementRules | None) -> str:
    """The declared placement in one or a few lines."""
    if rules is None:
        return "static (no placement driver running)"
    lines = [f"{rules.replicas} replicas, spread across {rules.location_label!r}"]
    for r in rules.ranges:
        span = f"{describe_bound(r.start)} .. {describe_bound(r.end, end=True)}"
        name = f" ({r.name})" if r.name else ""
        lines.append(f"{span}: {r.replicas} replicas across {r.location_label!r}{name}")
    return "\n".join(lines)


def status_table(s: StatusView) -> RenderableType:
    """`cairn ctl status`."""
    table = Table(title=f"cluster {s.cluster_id}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("health", health_text(s.health))
    for problem in s.problems:
        table.add_row("", Text(f"- {problem}", style=_HEALTH_STYLE[s.health]))
    n = s.nodes
    nodes = f"{n.total} ({n.up} up, {n.down} down, {n.draining} draining, {n.removed} removed)"
    table.add_row("nodes", nodes)
    table.add_row("regions", f"{s.regions} ({s.regions_with_leader} with a leader)")
    if s.placement_running:
        table.add_row("under-replicated", str(s.under_replicated))
        table.add_row("operators running", str(s.operators_running))
        table.add_row("last event", f"#{s.last_event_seq}")
    table.add_row("placement", rules_text(s.rules))
    table.add_row("answered by", f"node {s.answered_by}")
    return table


def nodes_table(nodes: Sequence[NodeView]) -> RenderableType:
    """`cairn ctl nodes`."""
    table = Table(title=f"{len(nodes)} node(s)", title_justify="left")
    for name in ("id", "status", "client", "peer", "labels", "regions", "leaders", "heartbeat"):
        table.add_column(name, justify="right" if name in ("id", "regions", "leaders") else "left")
    table.add_column("used / capacity")
    for n in nodes:
        labels = ",".join(f"{k}={v}" for k, v in n.labels) or "-"
        used = (
            "-"
            if n.capacity_bytes is None
            else (f"{human_bytes(n.used_bytes)} / {human_bytes(n.capacity_bytes)}")
        )
        table.add_row(
            str(n.id),
            Text(n.status.value, style=_NODE_STYLE[n.status]),
            n.client_address or "-",
            n.peer_address or "-",
            labels,
            str(n.regions),
            str(n.leaders),
            ago(n.silent_ms),
            used,
        )
    return table


def region_range(r: RegionView) -> str:
    """A region's extent: its slots, plus the exact bounds when one lies inside a slot."""
    slots = describe_slots(r.slots())
    if is_slot_bound(r.start) and is_slot_bound(r.end):
        return slots
    return f"{slots} ({describe_bound(r.start)} .. {describe_bound(r.end, end=True)})"


def _peers(r: RegionView, role: str) -> str:
    marked = [
        f"{p.node_id}*" if p.node_id == r.leader else str(p.node_id)
        for p in r.peers
        if p.role == role
    ]
    return ",".join(marked) or "-"


def regions_table(regions: Sequence[RegionView]) -> RenderableType:
    """`cairn ctl regions` (the leader's node is starred among the voters)."""
    table = Table(title=f"{len(regions)} region(s)", title_justify="left")
    for name in ("id", "slots", "epoch", "leader", "voters", "learners", "health", "keys", "size"):
        table.add_column(name, justify="right" if name in ("id", "keys", "size") else "left")
    table.add_column("operator")
    for r in regions:
        table.add_row(
            str(r.id),
            region_range(r),
            f"{r.version}/{r.conf_ver}",
            "-" if r.leader is None else str(r.leader),
            _peers(r, "voter"),
            _peers(r, "learner"),
            health_text(r.health),
            "-" if r.approximate_keys is None else str(r.approximate_keys),
            human_bytes(r.approximate_size),
            r.operator or "-",
        )
    return table


def event_line(e: EventView) -> Text:
    """One event: number, time, kind, what it concerns, and why."""
    about = [
        f"{what} {value}"
        for what, value in (("node", e.node_id), ("region", e.region_id), ("op", e.operator_id))
        if value is not None
    ]
    text = Text(f"#{e.seq} ", style="dim")
    text.append(wall_time(e.time_ms) + " ")
    text.append(e.kind, style="bold")
    if about:
        text.append(" [" + ", ".join(about) + "]")
    text.append(f": {e.reason}")
    return text


def events_block(events: Sequence[EventView]) -> RenderableType:
    """Events, one line each."""
    return Group(*(event_line(e) for e in events))
