"""The cluster's layout as Redis Cluster clients see it: CLUSTER SLOTS, SHARDS, NODES, INFO.

Theory of operation. Redis Cluster gives every hash slot one master node and a few
replicas; clients fetch that map (CLUSTER SLOTS or SHARDS) and send each key to its slot's
master. Cairn's unit is the region, a Raft group over a range of (slot, key); a `Topology`
translates a routing table (`RegionMap`), the leader of each region and an address book
of nodes into Redis' vocabulary:

- a region is a shard: its leader is the master, its other peers (voters, then learners)
  are the replicas;
- a slot belongs to the region holding the slot's *first* key (`slot_bound(slot)`). A
  region normally starts and ends on slot boundaries, and then this is simply "the region
  holding the slot". When a huge slot was split inside, the slot still gets exactly one
  owner, the region where it begins, so that clients see a well-formed map and `MOVED`
  answers always agree with it; the keys past the split point are forwarded by the owner's
  leader to their own region (any node forwards anything), so the rule costs one hop for
  those keys and nothing else;
- while a region has no known leader (an election), its acting primary is its first voter
  whose node is not known to be down: the slot stays covered (redis-py refuses a map with
  holes) and the node it names forwards until the election ends;
- a node's 40-hex name is a hash of the cluster id and node id, so it is stable across
  restarts and distinct between clusters.

A `Topology` is an immutable snapshot: build a new one when the map, a leader or the
address book changes (the node caches it), and ask it for replies; `cluster_command`
answers the CLUSTER subcommands from it. Nothing here does I/O; the time that CLUSTER NODES
shows is passed in.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cairn.meta.region import Peer, Region, bound_slot, slot_bound
from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Map, Reply, SimpleString, Verbatim
from cairn.shard.region_map import RegionMap
from cairn.store.commands.spec import text_of
from cairn.store.slot import SLOT_COUNT, key_slot


def node_name(cluster_id: str, node_id: int) -> str:
    """The 40-hex-digit name Redis Cluster clients know node `node_id` of `cluster_id` by."""
    return hashlib.sha1(f"cairn/{cluster_id}/{node_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where clients reach a node (`host:port`) and where its peers do (`bus_port`, shown
    after the `@` of CLUSTER NODES as Redis shows its cluster bus port)."""

    host: str
    port: int
    bus_port: int = 0

    @property
    def endpoint(self) -> str:
        """`host:port`, as MOVED names a node."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots `first`..`last` (inclusive, as Redis writes ranges) owned by `region`."""

    first: int
    last: int
    region: Region


def owned_slots(region: Region) -> range:
    """The slots whose first key lies in `region`: the slots it answers for in CLUSTER SLOTS."""
    candidates = region.slots()
    first, stop = candidates.start, min(candidates.stop, SLOT_COUNT)  # no key lies past it
    if first >= stop:
        return range(0)
    if not region.contains(slot_bound(first)):
        first += 1
    if stop - 1 >= first and not region.contains(slot_bound(stop - 1)):
        stop -= 1
    return range(first, max(first, stop))


def slot_ranges(regions: Iterable[Region]) -> list[SlotRange]:
    """Every owned slot range of `regions` (which must not overlap), in slot order."""
    ranges = []
    for region in regions:
        owned = owned_slots(region)
        if owned:
            ranges.append(SlotRange(owned.start, owned.stop - 1, region))
    return sorted(ranges, key=lambda r: r.first)


class Health(enum.StrEnum):
    """A region's state as CLUSTER INFO counts its slots."""

    OK = "ok"
    PFAIL = "pfail"
    """No leader is known, but a quorum of voters is up: an election should end it."""
    FAIL = "fail"
    """A majority of the voters is on nodes known to be down: the region cannot serve."""


class Topology:
    """One consistent snapshot of the layout, and the CLUSTER replies it implies.

    `leaders` maps region ids to their leader's node id (absent: unknown); `nodes` is the
    address book (a node without an address is not shown); `down` the nodes believed down;
    `offsets` a peer id's applied index, shown as its replication offset.
    """

    def __init__(
        self,
        regions: Iterable[Region],
        leaders: Mapping[int, int],
        nodes: Mapping[int, NodeAddress],
        my_id: int,
        cluster_id: str,
        *,
        down: Iterable[int] = (),
        offsets: Mapping[int, int] | None = None,
    ) -> None:
        self.map = RegionMap(list(regions))
        self.regions: tuple[Region, ...] = tuple(self.map)
        self.leaders = dict(leaders)
        self.nodes = dict(nodes)
        self.my_id = my_id
        self.cluster_id = cluster_id
        self.down = frozenset(down)
        self.offsets = dict(offsets or {})
        self.ranges = slot_ranges(self.regions)
        self._firsts = [r.first for r in self.ranges]
        self._names = {n: node_name(cluster_id, n) for n in self.nodes}
        gaps = self.map.gaps()
        self._gap_slot = bound_slot(gaps[0][0]) if gaps else None

    # -- who owns what ------------------------------------------------------------------

    def region_of(self, key: bytes) -> Region | None:
        """The region holding Redis key `key`, if one is known."""
        return self.map.locate_key(key)

    def gap_slot(self) -> int | None:
        """The slot where the first range no known region covers begins (None: no gap)."""
        return self._gap_slot

    def owner(self, slot: int) -> Region | None:
        """The region that answers for `slot` (None: the slot is not assigned)."""
        i = bisect.bisect_right(self._firsts, slot) - 1
        if i < 0 or self.ranges[i].last < slot:
            return None
        return self.ranges[i].region

    def leader(self, region: Region) -> int | None:
        """The node id of `region`'s leader, if known."""
        return self.leaders.get(region.id)

    def primary(self, region: Region) -> int | None:
        """The node shown as `region`'s master: its leader, else a stand-in (module doc)."""
        lead = self.leaders.get(region.id)
        if lead is not None and lead in self.nodes:
            return lead
        shown = [p.node_id for p in region.voters() if p.node_id in self.nodes]
        up = [n for n in shown if n not in self.down]
        candidates = up or shown
        return candidates[0] if candidates else None

    def replicas(self, region: Region) -> list[Peer]:
        """`region`'s live peers other than its primary that have an address, voters first
        (Redis leaves failed replicas out of CLUSTER SLOTS too)."""
        primary = self.primary(region)
        ordered = [*region.voters(), *region.learners()]
        shown = (p for p in ordered if p.node_id != primary and p.node_id in self.nodes)
        return [p for p in shown if p.node_id not in self.down]

    def health(self, region: Region) -> Health:
        """Whether `region` can serve (see `Health`)."""
        voters = region.voters()
        if not voters:
            return Health.FAIL
        down = sum(1 for p in voters if p.node_id in self.down)
        if 2 * down >= len(voters):
            return Health.FAIL
        lead = self.leaders.get(region.id)
        return Health.OK if lead is not None and lead not in self.down else Health.PFAIL

    def name(self, node_id: int) -> str:
        """The 40-hex name of node `node_id`."""
        name = self._names.get(node_id)
        return name if name is not None else node_name(self.cluster_id, node_id)

    def node_by_name(self, name: str) -> int | None:
        """The node id whose name is `name`, if it is in the address book."""
        return next((n for n, known in self._names.items() if known == name), None)

    # -- CLUSTER SLOTS / SHARDS -----------------------------------------------------------

    def _slots_node(self, node_id: int) -> Array:
        address = self.nodes[node_id]
        return Array(
            (
                Bulk(address.host.encode()),
                Integer(address.port),
                Bulk(self.name(node_id).encode()),
                Map(()),
            )
        )

    def slots_reply(self) -> Array:
        """CLUSTER SLOTS: [first, last, master, replica ...] per owned slot range."""
        entries: list[Reply] = []
        for r in self.ranges:
            primary = self.primary(r.region)
            if primary is None:
                continue
            nodes = [primary, *(p.node_id for p in self.replicas(r.region))]
            head: list[Reply] = [Integer(r.first), Integer(r.last)]
            entries.append(Array((*head, *(self._slots_node(n) for n in nodes))))
        return Array(tuple(entries))

    def _shard_node(self, node_id: int, role: str, peer: Peer) -> Map:
        address = self.nodes[node_id]
        host = Bulk(address.host.encode())
        return _map(
            ("id", Bulk(self.name(node_id).encode())),
            ("port", Integer(address.port)),
            ("ip", host),
            ("endpoint", host),
            ("role", Bulk(role.encode())),
            ("replication-offset", Integer(self.offsets.get(peer.id, 0))),
            ("health", Bulk(b"fail" if node_id in self.down else b"online")),
        )

    def shards_reply(self) -> Array:
        """CLUSTER SHARDS: one shard per region, its slot ranges and its nodes."""
        owned = {r.region.id: r for r in self.ranges}
        shards: list[Reply] = []
        for region in self.regions:
            primary = self.primary(region)
            r = owned.get(region.id)
            slots = (Integer(r.first), Integer(r.last)) if r is not None else ()
            nodes = [
                self._shard_node(p.node_id, "master" if p.node_id == primary else "replica", p)
                for p in sorted(region.peers, key=lambda p: p.node_id != primary)
                if p.node_id in self.nodes
            ]
            shards.append(_map(("slots", Array(slots)), ("nodes", Array(tuple(nodes)))))
        return Array(tuple(shards))

    # -- CLUSTER NODES ------------------------------------------------------------------

    def _epoch(self, region: Region) -> int:
        return region.epoch.version + region.epoch.conf_ver

    def _led(self, node_id: int) -> list[Region]:
        return [r for r in self.regions if self.primary(r) == node_id]

    def config_epoch(self, node_id: int) -> int:
        """A node's config epoch: the newest epoch among the regions it is master of, or
        (for a replica) of its master; informational, it grows as the layout changes."""
        led = self._led(node_id)
        if led:
            return max(self._epoch(r) for r in led)
        master = self.master_of(node_id)
        return self.config_epoch(master) if master is not None else 0

    def master_of(self, node_id: int) -> int | None:
        """For a node that is master of nothing: the master of the first region it serves."""
        for region in self.regions:
            primary = self.primary(region)
            if region.peer_on(node_id) is not None and primary is not None:
                return primary if primary != node_id else None
        return None

    def node_line(self, node_id: int, now_ms: int) -> str:
        """One line of CLUSTER NODES (without its newline)."""
        address = self.nodes[node_id]
        led = self._led(node_id)
        master = None if led else self.master_of(node_id)
        flags = "master" if master is None else "slave"
        if node_id == self.my_id:
            flags = "myself," + flags
        alive = node_id not in self.down
        if not alive:
            flags += ",fail"
        led_ids = {r.id for r in led}
        slots = [r for r in self.ranges if r.region.id in led_ids]
        fields = [
            self.name(node_id),
            f"{address.host}:{address.port}@{address.bus_port}",
            flags,
            "-" if master is None else self.name(master),
            "0",
            str(now_ms if alive else 0),
            str(self.config_epoch(node_id)),
            "connected" if alive else "disconnected",
            *(str(r.first) if r.first == r.last else f"{r.first}-{r.last}" for r in slots),
        ]
        return " ".join(fields)

    def nodes_text(self, now_ms: int) -> str:
        """CLUSTER NODES: one line per node of the address book, in node id order."""
        return "".join(self.node_line(n, now_ms) + "\n" for n in sorted(self.nodes))

    # -- CLUSTER INFO -------------------------------------------------------------------

    def slot_counts(self) -> dict[Health, int]:
        """Assigned slots by the health of their owner region (`Health` values)."""
        counts = {Health.OK: 0, Health.PFAIL: 0, Health.FAIL: 0}
        for r in self.ranges:
            counts[self.health(r.region)] += r.last - r.first + 1
        return counts

    def info_text(self) -> str:
        """CLUSTER INFO: Redis' fields, computed from the map (a gap fails the cluster)."""
        counts = self.slot_counts()
        assigned = sum(counts.values())
        ok = assigned == SLOT_COUNT and counts[Health.FAIL] == 0
        masters = {self.primary(r.region) for r in self.ranges} - {None}
        epochs = [self._epoch(r) for r in self.regions]
        fields = (
            ("cluster_state", "ok" if ok else "fail"),
            ("cluster_slots_assigned", assigned),
            ("cluster_slots_ok", counts[Health.OK]),
            ("cluster_slots_pfail", counts[Health.PFAIL]),
            ("cluster_slots_fail", counts[Health.FAIL]),
            ("cluster_known_nodes", len(self.nodes)),
            ("cluster_size", len(masters)),
            ("cluster_current_epoch", max(epochs, default=0)),
            ("cluster_my_epoch", self.config_epoch(self.my_id)),
            ("cluster_stats_messages_sent", 0),
            ("cluster_stats_messages_received", 0),
            ("total_cluster_links_buffer_limit_exceeded", 0),
        )
        return "".join(f"{k}:{v}\r\n" for k, v in fields)

    def replicas_text(self, node_id: int, now_ms: int) -> str:
        """CLUSTER REPLICAS: the NODES lines of the nodes whose master is `node_id`."""
        lines = [
            self.node_line(n, now_ms) + "\n"
            for n in sorted(self.nodes)
            if not self._led(n) and self.master_of(n) == node_id
        ]
        return "".join(lines)


def _map(*pairs: tuple[str, Reply]) -> Map:
    return Map(tuple((Bulk(k.encode()), v) for k, v in pairs))


# -- the CLUSTER command ----------------------------------------------------------------

LAYOUT_SUBCOMMANDS = frozenset({b"slots", b"shards", b"nodes"})
"""The CLUSTER subcommands that hand a client the layout (and so mark it cluster-aware)."""

UNSUPPORTED_SUBCOMMANDS = frozenset(
    {
        "addslots",
        "addslotsrange",
        "bumpepoch",
        "count-failure-reports",
        "countkeysinslot",
        "delslots",
        "delslotsrange",
        "failover",
        "flushslots",
        "forget",
        "getkeysinslot",
        "links",
        "meet",
        "replicate",
        "reset",
        "saveconfig",
        "set-config-epoch",
        "setslot",
    }
)
"""Redis' CLUSTER subcommands Cairn does not offer: the placement driver decides the layout
(`cairn ctl` changes it), and the per-slot key listings need a read of the keyspace."""

HELP_LINES = (
    "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
    "INFO",
    "    The cluster's state and slot counts.",
    "KEYSLOT <key>",
    "    The hash slot of <key>.",
    "MYID",
    "    This node's name.",
    "NODES",
    "    One line per node: name, address, flags, master, epoch, link state, slots.",
    "REPLICAS <node-id>",
    "    The NODES lines of the replicas of <node-id>.",
    "SHARDS",
    "    Each shard (a Cairn region): its slot ranges and its nodes.",
    "SLOTS",
    "    Each slot range: first, last, master, then replicas.",
    "HELP",
    "    This text.",
    "The layout is placed by Cairn itself: change it with 'cairn ctl', not CLUSTER.",
)


def _arity_error(sub: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for 'cluster|{sub}' command")


def _replicas(topology: Topology, arg: bytes, now_ms: int) -> Reply:
    name = arg.decode("utf-8", "replace")
    node = topology.node_by_name(name)
    if node is None:
        return ErrorReply(f"ERR Unknown node {text_of(arg)}")
    if topology.master_of(node) is not None:
        return ErrorReply("ERR The specified node is not a master")
    return Verbatim(topology.replicas_text(node, now_ms).encode())


_NO_ARGS: dict[str, Callable[[Topology, int], Reply]] = {
    "slots": lambda t, now: t.slots_reply(),
    "shards": lambda t, now: t.shards_reply(),
    "nodes": lambda t, now: Verbatim(t.nodes_text(now).encode()),
    "info": lambda t, now: Verbatim(t.info_text().encode()),
    "myid": lambda t, now: Bulk(t.name(t.my_id).encode()),
    "help": lambda t, now: Array(tuple(SimpleString(line) for line in HELP_LINES)),
}


def cluster_command(topology: Topology, args: Sequence[bytes], now_ms: int) -> Reply:
    """The reply to `CLUSTER <args>` (`args` without the command name; at least one).

    Error texts are Redis 7.0's: a wrong argument count names `cluster|<sub>`, an unknown
    subcommand is quoted as sent.
    """
    sub = args[0].lower().decode("utf-8", "replace")
    rest = args[1:]
    handler = _NO_ARGS.get(sub)
    if handler is not None:
        return handler(topology, now_ms) if not rest else _arity_error(sub)
    if sub == "keyslot":
        return Integer(key_slot(rest[0])) if len(rest) == 1 else _arity_error(sub)
    if sub in ("replicas", "slaves"):
        return _replicas(topology, rest[0], now_ms) if len(rest) == 1 else _arity_error(sub)
    if sub in UNSUPPORTED_SUBCOMMANDS:
        return ErrorReply(
            f"ERR CLUSTER {sub.upper()} is not supported: Cairn places regions itself "
            "(use 'cairn ctl')"
        )
    return ErrorReply(f"ERR unknown subcommand '{text_of(args[0])}'. Try CLUSTER HELP.")
