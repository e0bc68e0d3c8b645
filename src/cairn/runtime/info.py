"""The INFO command's text: Redis' sections with Cairn's figures, plus a `raft` section."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cairn.resp.reply import Integer
from cairn.runtime.client_commands import PROTOCOL_LEVEL

if TYPE_CHECKING:
    from cairn.runtime.node import Node

Section = Callable[["Node"], list[tuple[str, object]]]


def _server(node: Node) -> list[tuple[str, object]]:
    cfg = node.config
    uptime = int(time.time() - node.started_at)
    return [
        ("redis_version", PROTOCOL_LEVEL),
        ("cairn_version", _version()),
        ("redis_mode", "cluster"),
        ("os", f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("process_id", os.getpid()),
        ("tcp_port", cfg.client_addr[1]),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("node_id", cfg.node_id),
        ("cluster_id", cfg.cluster_id),
    ]


def _version() -> str:
    from cairn import __version__

    return __version__


def _clients(node: Node) -> list[tuple[str, object]]:
    return [
        ("connected_clients", len(node.server.clients)),
        ("maxclients", node.config.limits.max_clients),
        ("total_connections_received", node.server.stats["total_connections_received"]),
        ("rejected_connections", node.server.stats["rejected_connections"]),
    ]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory(node: Node) -> list[tuple[str, object]]:
    rss = _rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [("used_memory_rss", rss), ("used_memory_peak", peak), ("maxmemory", 0)]


def _persistence(node: Node) -> list[tuple[str, object]]:
    store = node.log_store
    failed = store.env.failed
    state = store.state
    return [
        ("loading", 0),
        ("aof_enabled", 0),
        ("raft_log_fsync", "always"),
        ("raft_log_first_index", state.dummy_index + 1),
        ("raft_log_last_index", state.last_index),
        ("raft_snapshot_index", state.snapshot_index),
        ("raft_snapshots_taken", node.replica.counters.snapshots_taken),
        ("raft_snapshots_installed", node.replica.counters.snapshots_restored),
        ("disk_status", "failed" if failed else "ok"),
    ]


def _replication(node: Node) -> list[tuple[str, object]]:
    replica = node.replica
    status = replica.raw.status()
    if replica.is_leader:
        fields: list[tuple[str, object]] = [
            ("role", "master"),
            ("connected_slaves", sum(1 for i in status.progress if i != status.id)),
        ]
        for n, (peer, pr) in enumerate(sorted(status.progress.items())):
            if peer == status.id:
                continue
            state = "online" if pr.recent_active else "wait_bgsave"
            fields.append((f"slave{n}", f"node_id={peer},state={state},offset={pr.match},lag=0"))
        fields.append(("master_repl_offset", status.commit))
        return fields
    return [
        ("role", "slave"),
        ("master_node_id", status.lead),
        ("master_link_status", "up" if status.lead else "down"),
        ("slave_repl_offset", status.applied),
    ]


def _keyspace(node: Node) -> list[tuple[str, object]]:
    reply = node.machine.execute_read("dbsize", [], 0)
    keys = reply.value if isinstance(reply, Integer) else 0
    return [("db0", f"keys={keys},expires=0,avg_ttl=0")] if keys else []


def _raft(node: Node) -> list[tuple[str, object]]:
    status = node.replica.raw.status()
    cs = status.conf_state
    fields: list[tuple[str, object]] = [
        ("raft_node_id", status.id),
        ("raft_role", status.role.value.removeprefix("State").lower()),
        ("raft_term", status.term),
        ("raft_leader_id", status.lead),
        ("raft_commit_index", status.commit),
        ("raft_applied_index", status.applied),
        ("raft_voters", ",".join(map(str, cs.voters))),
        ("raft_learners", ",".join(map(str, cs.learners))),
    ]
    for peer, pr in sorted(status.progress.items()):
        fields.append(
            (f"raft_peer{peer}", f"match={pr.match},next={pr.next_index},state={pr.state.value}")
        )
    return fields


def _cluster(node: Node) -> list[tuple[str, object]]:
    return [("cluster_enabled", 1)]


SECTIONS: dict[str, Section] = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "replication": _replication,
    "cluster": _cluster,
    "keyspace": _keyspace,
    "raft": _raft,
}


def render_info(node: Node, wanted: Sequence[str]) -> str:
    """INFO's text for the wanted sections (all, default or everything when empty)."""
    everything = not wanted or bool({"all", "everything", "default"} & set(wanted))
    names = [n for n in SECTIONS if everything or n in wanted]
    parts = []
    for name in names:
        lines = [f"# {name.capitalize() if name != 'raft' else 'Raft'}"]
        lines += [f"{k}:{v}" for k, v in SECTIONS[name](node)]
        parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts)
