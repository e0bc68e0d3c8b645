"""Routing a client command: which regions its keys fall in, and where it runs.

Theory of operation. Any node serves any key: a command whose region this node leads runs
here; otherwise it is forwarded to the leader, and the leader's reply is relayed. A
forwarded command carries the region's epoch as this node knows it, so a leader whose
region has since split, merged or changed members refuses it, and the forwarding node
refreshes its map and routes again (the epoch check corrects stale routes; routing
itself never needs to be perfectly up to date).

Cluster-aware clients (redis-py's `RedisCluster`, `redis-cli -c`, ...) route by slot
themselves, so a node may instead answer `MOVED <slot> <host:port>`, naming the leader of
the region that owns the slot in CLUSTER SLOTS (`Topology.owner`), and the client goes
straight there next time. `route` decides, per command:

- `Local`: this node leads the region (or serves a READONLY follower read, when enabled);
- `Forward`: send it to the region's leader (`leader` None: unknown yet, wait and retry);
- `Moved`: tell a cluster-aware client where the slot lives;
- `Fanout`: keys in several regions, for a command whose answer is the same when it runs
  region by region and the replies are merged (`SPLITTABLE`), or a keyless command that
  reads or clears every region; each part is itself `Local` or `Forward`;
- `Refuse`: `-CROSSSLOT` (keys in several regions for any other command), exactly as
  Redis Cluster answers a request whose keys are in different slots;
- `NoRoute`: a key falls in a range no known region covers (the map is catching up);
  retry, and after the deadline answer `-CLUSTERDOWN Hash slot not served`.

When is MOVED sent? Redis Cluster sends it to everyone, which breaks plain clients. Cairn's
`Redirect.AUTO` sends it only to connections that showed they are cluster-aware: they asked
for the layout (CLUSTER SLOTS/SHARDS/NODES) or sent READONLY, READWRITE or ASKING
(`observe`). Plain clients are never redirected. redis-py's `RedisCluster` asks CLUSTER
SLOTS on a bootstrap connection but opens fresh connections for commands, and `redis-cli -c`
sends nothing cluster-specific at all, so under AUTO both are served by forwarding: always
correct, at the price of one extra hop after the layout changes under them.
`Redirect.ALWAYS` (every client is a cluster client) makes them follow MOVED as against
Redis; `Redirect.NEVER` forwards everything.

ASK is never sent. Redis needs it while a slot's keys migrate one by one between two
masters, so that for a while some keys are on each. Cairn never has such a window: a split
is one Raft entry in the region being split (both halves start on the same nodes), a merge
commits only once the source is caught up, and a region moves between nodes by membership
change and leader transfer, so at every epoch each key has exactly one region, whose
leader serves all of it. ASKING is still accepted (a client may send it), as a no-op.

Which multi-key commands run region by region (`SPLITTABLE`)? Those redis-py's
`RedisCluster` itself splits per slot and recombines: MGET (values in key order), and DEL,
UNLINK, EXISTS, TOUCH (counts summed). For them the merged reply is exactly what one
execution over the union would answer when nothing else writes those keys meanwhile; each
region's part is atomic and linearizable, but the whole is not one atomic step across
regions (a concurrent reader may see one region's part done and not another's, as with a
Redis Cluster client splitting the same command). Commands whose meaning needs one atomic
step over all keys (`TRANSACTIONAL`: MSET, MSETNX, RENAME, SUNIONSTORE ...) are refused
here (`Refuse(CROSSSLOT)`); the node then runs them as a one-command cross-region
transaction for a connection it would not redirect (`client_redirects` False), and a
cluster-aware one gets CROSSSLOT as from Redis Cluster (`cairn.runtime.txn_wiring`).
`RoutingPolicy(split=frozenset())` refuses all of them instead.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cairn.meta.region import Region
from cairn.resp.reply import NULL, OK, Array, ErrorReply, Integer, NullBulk, Reply
from cairn.shard.topology import LAYOUT_SUBCOMMANDS, NodeAddress, Topology
from cairn.store.commands.scan import cursor_range_key
from cairn.store.commands.spec import CommandSpec
from cairn.store.slot import key_slot

CROSSSLOT = ErrorReply("CROSSSLOT Keys in request don't hash to the same slot")
SLOT_NOT_SERVED = ErrorReply("CLUSTERDOWN Hash slot not served")


class Redirect(enum.Enum):
    """When a node answers MOVED instead of forwarding (the `redirect` setting)."""

    AUTO = "auto"
    """Only to connections that showed they are cluster-aware."""
    ALWAYS = "always"
    """To every connection, as Redis Cluster does (plain clients then fail)."""
    NEVER = "never"
    """To none: every node forwards."""


class Merge(enum.Enum):
    """How the replies of a fanned-out command's parts become one reply."""

    BY_POSITION = "by_position"
    """Each part answered an array for its keys: put each item back at its key's place."""
    SUM = "sum"
    """Add the integers (DEL, EXISTS, DBSIZE ...)."""
    ALL_OK = "all_ok"
    """OK when every part said OK (FLUSHALL ...)."""
    CONCAT = "concat"
    """Concatenate the arrays (KEYS)."""
    ANY = "any"
    """The first non-null reply (RANDOMKEY)."""


SPLITTABLE = frozenset({"mget", "del", "unlink", "exists", "touch"})
"""Multi-key commands that may run region by region (module doc: which and why)."""

TRANSACTIONAL = frozenset(
    {
        "mset", "msetnx", "rename", "renamenx", "copy", "smove", "lmove",
        "sinterstore", "sunionstore", "sdiffstore", "zunionstore", "zinterstore",
        "zdiffstore", "zrangestore", "bitop", "pfmerge", "geosearchstore", "sort",
    }
)
"""Multi-key writes that run as one cross-region transaction when their keys span
regions (for a connection that is not redirected; `SORT` only with `STORE`, the one form
naming a second key)."""

_KEYLESS_MERGE = {
    "dbsize": Merge.SUM,
    "flushdb": Merge.ALL_OK,
    "flushall": Merge.ALL_OK,
    "keys": Merge.CONCAT,
    "randomkey": Merge.ANY,
    "object": Merge.ANY,  # OBJECT HELP: every region answers the same text
}
"""Keyless commands that read or clear every region, and how their replies combine."""

ANYWHERE = frozenset({"eval", "eval_ro", "evalsha", "evalsha_ro"})
"""Keyless commands that run whole in one region, whichever: scripts declaring no keys
run in the region of slot 0 (docs/scripting.md)."""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """A node's routing settings."""

    redirect: Redirect = Redirect.AUTO
    split: frozenset[str] = SPLITTABLE
    """The commands that run region by region when their keys span regions."""
    follower_reads: bool = False
    """Serve reads of READONLY connections on a follower (through a ReadIndex, so still
    linearizable); off until the replica offers follower ReadIndex reads."""


@dataclass(frozen=True, slots=True)
class ClientRouting:
    """What routing knows about one connection."""

    cluster_aware: bool = False
    """It asked for the layout or sent READONLY/READWRITE/ASKING: it can follow MOVED."""
    readonly: bool = False
    """It sent READONLY (and no READWRITE since): it accepts reads from replicas."""


AWARENESS_COMMANDS = frozenset({b"cluster", b"readonly", b"readwrite", b"asking"})
"""The (lowercase) command names `observe` looks at; any other leaves the state as is."""


def observe(client: ClientRouting, argv: Sequence[bytes]) -> ClientRouting:
    """`client`'s routing state after it sent `argv` (name first)."""
    name = argv[0].lower() if argv else b""
    if name == b"cluster":
        layout = len(argv) == 2 and argv[1].lower() in LAYOUT_SUBCOMMANDS
        return replace(client, cluster_aware=True) if layout else client
    if name == b"readonly":
        return ClientRouting(cluster_aware=True, readonly=True)
    if name == b"readwrite":
        return ClientRouting(cluster_aware=True, readonly=False)
    if name == b"asking":
        return replace(client, cluster_aware=True)
    return client


# -- decisions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Local:
    """Run the command here, on this node's replica of `region`."""

    region: Region
    follower: bool = False
    """This node is not the leader: read through a ReadIndex (READONLY follower read)."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the command to `region`'s leader, stamped with `region.epoch`."""

    region: Region
    leader: int | None
    """None: no leader is known yet; retry until the request's deadline."""


@dataclass(frozen=True, slots=True)
class Moved:
    """Answer MOVED: `slot` is served by the node at `address`."""

    slot: int
    address: NodeAddress

    @property
    def reply(self) -> ErrorReply:
        """The error reply, as Redis Cluster words it."""
        return ErrorReply(f"MOVED {self.slot} {self.address.endpoint}")


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer `reply` (CROSSSLOT, or a command that cannot run over several regions)."""

    reply: ErrorReply


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No known region holds `slot`'s key: retry as the map fills, then `SLOT_NOT_SERVED`."""

    slot: int
    reply: ErrorReply = SLOT_NOT_SERVED


@dataclass(frozen=True, slots=True)
class Part:
    """One region's share of a fanned-out command: `argv` to run there, and the positions
    (among the original command's keys) of the keys it carries."""

    target: Local | Forward
    argv: tuple[bytes, ...]
    positions: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Fanout:
    """Run every part (in any order, or all at once) and `merge` the replies in part order."""

    parts: tuple[Part, ...]
    merge: Merge
    key_count: int = 0
    """How many keys the original command named (the length of a BY_POSITION reply)."""


Decision = Local | Forward | Moved | Refuse | NoRoute | Fanout


@dataclass(frozen=True, slots=True)
class _Located:
    """A command's keys with their slots and regions, in argument order."""

    keys: list[bytes]
    slots: list[int]
    regions: list[Region | None]


def _locate(topology: Topology, keys: list[bytes]) -> _Located:
    slots = [key_slot(k) for k in keys]
    regions = [topology.region_of(k) for k in keys]
    return _Located(keys, slots, regions)


# -- the decision -----------------------------------------------------------------------


def route(
    argv: Sequence[bytes],
    spec: CommandSpec,
    topology: Topology,
    client: ClientRouting = ClientRouting(),
    policy: RoutingPolicy = RoutingPolicy(),
) -> Decision:
    """Where the command `argv` (name first, arity already checked) runs, or its answer."""
    keys = spec.keys(argv)
    if not keys:
        return _route_keyless(argv, spec, topology, client, policy)
    if len(keys) == 1:  # most commands: no lists to build
        region = topology.region_of(keys[0])
        slot = key_slot(keys[0])
        if region is None:
            return NoRoute(slot)
        return _route_one(region, slot, spec, topology, client, policy)
    located = _locate(topology, keys)
    for slot, region in zip(located.slots, located.regions, strict=True):
        if region is None:
            return NoRoute(slot)
    regions = {r.id: r for r in located.regions if r is not None}
    if len(regions) == 1:
        (region,) = regions.values()
        return _route_one(region, located.slots[0], spec, topology, client, policy)
    if spec.name not in policy.split or spec.last_key != -1:
        return Refuse(CROSSSLOT)
    return _split(argv, spec, located, topology, client, policy)


def _target(
    region: Region,
    spec: CommandSpec,
    topology: Topology,
    client: ClientRouting,
    policy: RoutingPolicy,
) -> Local | Forward:
    """Run here when this node leads `region` (or may serve a follower read), else forward."""
    lead = topology.leader(region)
    if lead == topology.my_id:
        return Local(region)
    if (
        policy.follower_reads
        and client.readonly
        and not spec.is_write
        and region.peer_on(topology.my_id) is not None
    ):
        return Local(region, follower=True)
    return Forward(region, lead)


def _route_one(
    region: Region,
    slot: int,
    spec: CommandSpec,
    topology: Topology,
    client: ClientRouting,
    policy: RoutingPolicy,
) -> Decision:
    target = _target(region, spec, topology, client, policy)
    if isinstance(target, Local) or not client_redirects(policy, client):
        return target
    if client.readonly and not spec.is_write and region.peer_on(topology.my_id) is not None:
        return target  # the client chose a replica for its reads on purpose: serve it
    return moved_to_leader(slot, topology) or target


def client_redirects(policy: RoutingPolicy, client: ClientRouting) -> bool:
    """Whether `client` is answered MOVED (rather than served by forwarding) under `policy`:
    shared with sharded pub/sub, which redirects as Redis Cluster does."""
    if policy.redirect is Redirect.ALWAYS:
        return True
    return policy.redirect is Redirect.AUTO and client.cluster_aware


def moved_to_leader(slot: int, topology: Topology) -> Moved | None:
    """MOVED to the known leader of `slot`'s owner, unless that is this node (then the
    client already talks to the node CLUSTER SLOTS names, and this node forwards)."""
    owner = topology.owner(slot)
    lead = topology.leader(owner) if owner is not None else None
    if lead is None or lead == topology.my_id:
        return None
    address = topology.nodes.get(lead)
    return Moved(slot, address) if address is not None else None


def _split(
    argv: Sequence[bytes],
    spec: CommandSpec,
    located: _Located,
    topology: Topology,
    client: ClientRouting,
    policy: RoutingPolicy,
) -> Fanout:
    """One part per region, keys in their original order; each key brings its `step - 1`
    following arguments (MSET-style pairs), so a part is a well-formed command."""
    groups: dict[int, list[int]] = {}
    for i, region in enumerate(located.regions):
        assert region is not None
        groups.setdefault(region.id, []).append(i)
    parts = []
    for positions in groups.values():
        region = located.regions[positions[0]]
        assert region is not None
        args = [argv[0]]
        for i in positions:
            at = spec.first_key + i * spec.step
            args.extend(argv[at : at + spec.step])
        target = _target(region, spec, topology, client, policy)
        parts.append(Part(target, tuple(args), tuple(positions)))
    merge = Merge.BY_POSITION if spec.name == "mget" else Merge.SUM
    return Fanout(tuple(parts), merge, len(located.keys))


def _route_keyless(
    argv: Sequence[bytes],
    spec: CommandSpec,
    topology: Topology,
    client: ClientRouting,
    policy: RoutingPolicy,
) -> Decision:
    """A keyless command reads or clears the whole keyspace: every region, or refused when
    its replies cannot be combined. SCAN goes to the one region holding its cursor's
    position, which answers up to its own end (see `cairn.store.commands.scan`)."""
    regions = topology.regions
    gaps = topology.gap_slot()
    if gaps is not None:
        return NoRoute(gaps)
    if len(regions) == 1:
        return _target(regions[0], spec, topology, client, policy)
    if spec.name in ANYWHERE:
        return _route_anywhere(spec, topology, client, policy)
    if spec.name == "scan":
        return _route_scan(argv, spec, topology, client, policy)
    merge = _KEYLESS_MERGE.get(spec.name)
    if merge is None:
        name = spec.name.upper()
        return Refuse(ErrorReply(f"ERR {name} over more than one region is not supported yet"))
    parts = tuple(Part(_target(r, spec, topology, client, policy), tuple(argv)) for r in regions)
    return Fanout(parts, merge)


def _route_anywhere(
    spec: CommandSpec, topology: Topology, client: ClientRouting, policy: RoutingPolicy
) -> Decision:
    """A keyless command that may run in any one region (a script with no keys): the
    region of slot 0, like a keyless EXEC."""
    region = topology.region_of(b"")
    if region is None:
        return NoRoute(0)
    return _route_one(region, 0, spec, topology, client, policy)


def _route_scan(
    argv: Sequence[bytes],
    spec: CommandSpec,
    topology: Topology,
    client: ClientRouting,
    policy: RoutingPolicy,
) -> Decision:
    position = cursor_range_key(argv[1])
    if position is None:  # an invalid cursor: any region answers Redis's error
        return _target(topology.regions[0], spec, topology, client, policy)
    region = topology.map.locate(position)
    if region is None:
        return NoRoute(int.from_bytes(position[:2], "big"))
    return _target(region, spec, topology, client, policy)


# -- merging ----------------------------------------------------------------------------


def merge(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    """The reply to the whole command from its parts' replies (in part order).

    An error from any part is the answer (the first, in part order): a client must not
    take a partial result for a whole one. Parts that wrote before another failed keep
    their effect, as when a Redis Cluster client splits the same command.
    """
    if len(replies) != len(fanout.parts):
        raise ValueError(f"{len(fanout.parts)} parts, {len(replies)} replies")
    error = next((r for r in replies if isinstance(r, ErrorReply)), None)
    if error is not None:
        return error
    return _MERGES[fanout.merge](fanout, replies)


def _unexpected(reply: Reply) -> ErrorReply:
    return ErrorReply(f"ERR unexpected reply from a region: {type(reply).__name__}")


def _by_position(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    items: list[Reply] = [NULL] * fanout.key_count
    for part, reply in zip(fanout.parts, replies, strict=True):
        if not isinstance(reply, Array) or len(reply.items) != len(part.positions):
            return _unexpected(reply)
        for position, item in zip(part.positions, reply.items, strict=True):
            items[position] = item
    return Array(tuple(items))


def _sum(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    total = 0
    for reply in replies:
        if not isinstance(reply, Integer):
            return _unexpected(reply)
        total += reply.value
    return Integer(total)


def _all_ok(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    return OK


def _concat(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    items: list[Reply] = []
    for reply in replies:
        if not isinstance(reply, Array):
            return _unexpected(reply)
        items.extend(reply.items)
    return Array(tuple(items))


def _any(fanout: Fanout, replies: Sequence[Reply]) -> Reply:
    return next((r for r in replies if not isinstance(r, NullBulk)), NULL)


_MERGES = {
    Merge.BY_POSITION: _by_position,
    Merge.SUM: _sum,
    Merge.ALL_OK: _all_ok,
    Merge.CONCAT: _concat,
    Merge.ANY: _any,
}
