"""Pub/sub on one node: who listens to what, and what each listener is sent (pure).

Theory of operation. Redis pub/sub is fire-and-forget: a message PUBLISHed on a channel is
pushed to every client subscribed to that channel, or to a glob pattern matching it, at
that moment, and kept nowhere. In a cluster a message published on any node is broadcast
to every node (Redis Cluster sends it over its bus; Cairn sends one PUBLISH frame per
peer), and each node delivers it to its own subscribers. This module is one node's part:

- `PubSubRegistry` holds the subscriptions of the clients connected to this node, of
  three kinds (`Kind`: channels, patterns, shard channels), indexed both ways; it
  answers the (P|S)SUBSCRIBE family with Redis's confirmations, decides who receives a
  message (`deliveries`, `shard_deliveries`) and answers PUBSUB's subcommands from this
  node's view, as Redis Cluster does.
- `shard_channels_error` and `shard_redirect` are Redis Cluster's CROSSSLOT and MOVED for
  the sharded commands.
- `subscriber_mode_reply` is the RESP2 rule: a subscribed connection may only send
  (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PING, QUIT and RESET; PING answers ["pong", arg].
- `OutputLimit` is Redis's `client-output-buffer-limit pubsub hard soft seconds`: when a
  subscriber's unsent output passes it, the connection is closed, so one slow reader
  cannot make the node hold messages without bound.

Orders are deterministic: a client's subscriptions, and a channel's or pattern's
subscribers, are kept in insertion order (Redis iterates hash tables; any order is valid
there). Channels are delivered before patterns, as in Redis.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.resp.reply import NULL, Array, Bulk, ErrorReply, Integer, Push, Reply, SimpleString
from cairn.shard.routing import (
    CROSSSLOT,
    ClientRouting,
    RoutingPolicy,
    client_redirects,
    moved_to_leader,
)
from cairn.shard.topology import Topology
from cairn.store.glob import stringmatch
from cairn.store.slot import key_slot

ALLOWED_IN_SUBSCRIBER_MODE = frozenset(
    {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"}
    | {"ping", "quit", "reset"}
)
"""The commands a RESP2 connection with subscriptions may send (Redis 7.0 `processCommand`)."""

CONTAINER_COMMANDS = frozenset(
    {"client", "config", "cluster", "command", "object", "memory", "pubsub", "xinfo", "xgroup"}
    | {"script", "function", "acl", "debug", "latency", "module", "slowlog"}
)
"""Commands whose errors name the subcommand too (`client|list`), as Redis's `fullname`."""

PUBSUB_HELP = (
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
)
"""PUBSUB HELP, Redis 7.0's text."""


def full_name(name: str, args: Sequence[bytes]) -> str:
    """The name Redis gives a command in errors: `get`, or `config|get` for a container."""
    if name in CONTAINER_COMMANDS and len(args) >= 2:
        return f"{name}|{args[1].lower().decode('utf-8', 'replace')}"
    return name


def subscriber_mode_error(fullname: str) -> ErrorReply:
    """Redis's refusal of a command a RESP2 subscribed connection may not send."""
    return ErrorReply(
        f"ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
        "QUIT / RESET are allowed in this context"
    )


def subscriber_ping(args: Sequence[bytes]) -> Reply:
    """PING [message] on a RESP2 subscribed connection: ["pong", message or ""]."""
    return Array((Bulk(b"pong"), Bulk(args[1] if len(args) > 1 else b"")))


def message_push(channel: bytes, payload: bytes) -> Push:
    """What a channel subscriber receives."""
    return Push((Bulk(b"message"), Bulk(channel), Bulk(payload)))


def pmessage_push(pattern: bytes, channel: bytes, payload: bytes) -> Push:
    """What a pattern subscriber receives."""
    return Push((Bulk(b"pmessage"), Bulk(pattern), Bulk(channel), Bulk(payload)))


def smessage_push(channel: bytes, payload: bytes) -> Push:
    """What a shard channel subscriber receives."""
    return Push((Bulk(b"smessage"), Bulk(channel), Bulk(payload)))


def _confirmation(kind: bytes, name: bytes | None, count: int) -> Push:
    return Push((Bulk(kind), NULL if name is None else Bulk(name), Integer(count)))


class Kind(enum.Enum):
    """A subscription's namespace: a channel, a pattern, or a shard channel."""

    CHANNEL = "subscribe"
    PATTERN = "psubscribe"
    SHARD = "ssubscribe"


_UNSUBSCRIBE = {
    Kind.CHANNEL: b"unsubscribe",
    Kind.PATTERN: b"punsubscribe",
    Kind.SHARD: b"sunsubscribe",
}


@dataclass(slots=True)
class ClientSubscriptions:
    """One client's channels, patterns and shard channels, in the order it subscribed."""

    channels: dict[bytes, None] = field(default_factory=dict)
    patterns: dict[bytes, None] = field(default_factory=dict)
    shard: dict[bytes, None] = field(default_factory=dict)

    def of(self, kind: Kind) -> dict[bytes, None]:
        """The subscriptions of one kind."""
        if kind is Kind.CHANNEL:
            return self.channels
        return self.patterns if kind is Kind.PATTERN else self.shard

    def count(self, kind: Kind) -> int:
        """What a confirmation of `kind` counts: shard channels for the sharded commands,
        channels plus patterns for the others (Redis's `clientSubscriptionsCount` and
        `clientShardSubscriptionsCount`)."""
        if kind is Kind.SHARD:
            return len(self.shard)
        return len(self.channels) + len(self.patterns)

    @property
    def total(self) -> int:
        """Every subscription: subscriber mode lasts while this is above 0."""
        return len(self.channels) + len(self.patterns) + len(self.shard)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one client: its id and what it is sent."""

    client: int
    push: Push


class PubSubRegistry:
    """Every subscription of the clients connected to one node.

    Invariant: client c is in `_index[kind][name]` iff name is in `_clients[c].of(kind)`;
    no entry is ever empty (it is removed with its last subscriber, and a client with its
    last subscription).
    """

    def __init__(self) -> None:
        self._clients: dict[int, ClientSubscriptions] = {}
        self._index: dict[Kind, dict[bytes, dict[int, None]]] = {k: {} for k in Kind}

    # -- one client's subscriptions ----------------------------------------------------

    def count(self, client: int, kind: Kind = Kind.CHANNEL) -> int:
        """What a confirmation of `kind` for `client` counts now."""
        subs = self._clients.get(client)
        return 0 if subs is None else subs.count(kind)

    def counts(self, client: int) -> tuple[int, int, int]:
        """`client`'s (channels, patterns, shard channels): CLIENT LIST's sub, psub, ssub."""
        subs = self._clients.get(client)
        if subs is None:
            return (0, 0, 0)
        return len(subs.channels), len(subs.patterns), len(subs.shard)

    def subscribed(self, client: int) -> bool:
        """Whether `client` is in subscriber mode (it listens to something)."""
        subs = self._clients.get(client)
        return subs is not None and subs.total > 0

    def subscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """SUBSCRIBE: one confirmation per channel named (repeats included)."""
        return [self._add(client, ch, Kind.CHANNEL) for ch in channels]

    def psubscribe(self, client: int, patterns: Sequence[bytes]) -> list[Reply]:
        """PSUBSCRIBE: one confirmation per pattern named."""
        return [self._add(client, p, Kind.PATTERN) for p in patterns]

    def ssubscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """SSUBSCRIBE: one confirmation per shard channel named."""
        return [self._add(client, ch, Kind.SHARD) for ch in channels]

    def unsubscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """UNSUBSCRIBE [channel ...]: every channel when none is named; one confirmation
        per channel, or one with a null channel when there was none to leave."""
        return self._remove_many(client, channels, Kind.CHANNEL)

    def punsubscribe(self, client: int, patterns: Sequence[bytes]) -> list[Reply]:
        """PUNSUBSCRIBE [pattern ...], as `unsubscribe` for patterns."""
        return self._remove_many(client, patterns, Kind.PATTERN)

    def sunsubscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """SUNSUBSCRIBE [shardchannel ...], as `unsubscribe` for shard channels."""
        return self._remove_many(client, channels, Kind.SHARD)

    def forget(self, client: int) -> None:
        """Drop every subscription of `client` (it disconnected, or sent RESET)."""
        subs = self._clients.pop(client, None)
        if subs is None:
            return
        for kind in Kind:
            for name in subs.of(kind):
                _discard(self._index[kind], name, client)

    def _own(self, client: int, kind: Kind) -> dict[bytes, None]:
        return self._clients.setdefault(client, ClientSubscriptions()).of(kind)

    def _add(self, client: int, name: bytes, kind: Kind) -> Reply:
        own = self._own(client, kind)
        if name not in own:
            own[name] = None
            self._index[kind].setdefault(name, {})[client] = None
        return _confirmation(kind.value.encode(), name, self.count(client, kind))

    def _remove_many(self, client: int, names: Sequence[bytes], kind: Kind) -> list[Reply]:
        if not names:
            names = list(self._own(client, kind))
        replies = [self._remove(client, name, kind) for name in names]
        if not replies:
            replies.append(_confirmation(_UNSUBSCRIBE[kind], None, self.count(client, kind)))
        if not self.subscribed(client):
            self._clients.pop(client, None)
        return replies

    def _remove(self, client: int, name: bytes, kind: Kind) -> Reply:
        own = self._own(client, kind)
        if name in own:
            del own[name]
            _discard(self._index[kind], name, client)
        return _confirmation(_UNSUBSCRIBE[kind], name, self.count(client, kind))

    # -- fan-out -------------------------------------------------------------------------

    def deliveries(self, channel: bytes, payload: bytes) -> list[Delivery]:
        """Who receives a message published on `channel`, and what: every subscriber of
        the channel, then every subscriber of each matching pattern (a client listening
        both ways, or through several patterns, gets one push per subscription)."""
        channels = self._index[Kind.CHANNEL]
        out = [Delivery(c, message_push(channel, payload)) for c in channels.get(channel, ())]
        for pattern, clients in self._index[Kind.PATTERN].items():
            if stringmatch(pattern, channel):
                push = pmessage_push(pattern, channel, payload)
                out.extend(Delivery(c, push) for c in clients)
        return out

    def shard_deliveries(self, channel: bytes, payload: bytes) -> list[Delivery]:
        """Who receives a message SPUBLISHed on the shard channel `channel` (patterns do
        not apply to shard channels)."""
        push = smessage_push(channel, payload)
        return [Delivery(c, push) for c in self._index[Kind.SHARD].get(channel, ())]

    # -- PUBSUB ----------------------------------------------------------------------------

    def channels(self, pattern: bytes | None = None, kind: Kind = Kind.CHANNEL) -> list[bytes]:
        """The channels (or shard channels) with a subscriber here, matching `pattern`."""
        index = self._index[kind]
        return [ch for ch in index if pattern is None or stringmatch(pattern, ch)]

    def numsub(self, channel: bytes, kind: Kind = Kind.CHANNEL) -> int:
        """How many clients here subscribe to `channel` (patterns not counted)."""
        return len(self._index[kind].get(channel, ()))

    def numpat(self) -> int:
        """How many distinct patterns clients here subscribe to (Redis 7.0 counts
        patterns, not pattern subscriptions)."""
        return len(self._index[Kind.PATTERN])


def _discard(index: dict[bytes, dict[int, None]], name: bytes, client: int) -> None:
    clients = index.get(name)
    if clients is not None:
        clients.pop(client, None)
        if not clients:
            del index[name]


_PUBSUB_ARITY = {
    b"channels": -2,
    b"numpat": 2,
    b"numsub": -2,
    b"shardchannels": -2,
    b"shardnumsub": -2,
    b"help": 2,
}


def pubsub_lookup_error(args: Sequence[bytes]) -> ErrorReply | None:
    """The error Redis gives PUBSUB `args` (after the command name) before running it: an
    unknown subcommand, or a wrong number of arguments for it; None when it may run."""
    sub = args[0].lower()
    arity = _PUBSUB_ARITY.get(sub)
    if arity is None:
        text = args[0].decode("utf-8", "replace")
        return ErrorReply(f"ERR unknown subcommand '{text}'. Try PUBSUB HELP.")
    argc = len(args) + 1
    if argc != arity if arity > 0 else argc < -arity:
        return ErrorReply(f"ERR wrong number of arguments for 'pubsub|{sub.decode()}' command")
    return None


def pubsub_command(registry: PubSubRegistry, args: Sequence[bytes]) -> Reply:
    """PUBSUB <subcommand> [args], `args` after the command name, answered from this
    node's subscriptions (Redis Cluster 7.0 answers CHANNELS, NUMSUB and NUMPAT
    node-locally too)."""
    error = pubsub_lookup_error(args)
    if error is not None:
        return error
    sub = args[0].lower()
    kind = Kind.SHARD if sub.startswith(b"shard") else Kind.CHANNEL
    if sub in (b"channels", b"shardchannels"):
        if len(args) > 2:
            text = args[0].decode("utf-8", "replace")
            return ErrorReply(
                f"ERR unknown subcommand or wrong number of arguments for '{text}'. "
                "Try PUBSUB HELP."
            )
        pattern = args[1] if len(args) == 2 else None
        return Array(tuple(Bulk(ch) for ch in registry.channels(pattern, kind)))
    if sub in (b"numsub", b"shardnumsub"):
        items: list[Reply] = []
        for ch in args[1:]:
            items += [Bulk(ch), Integer(registry.numsub(ch, kind))]
        return Array(tuple(items))
    if sub == b"numpat":
        return Integer(registry.numpat())
    return Array(tuple(SimpleString(line) for line in PUBSUB_HELP))


@dataclass(slots=True)
class OutputLimit:
    """Redis's `client-output-buffer-limit pubsub <hard> <soft> <seconds>` for one client.

    `over(backlog, now)` says whether the client must be disconnected: its unsent output
    is past the hard limit, or has stayed past the soft limit for `soft_seconds`.
    """

    hard_bytes: int
    soft_bytes: int
    soft_seconds: float
    over_soft_since: float | None = None
    """When the backlog last went past the soft limit (None: it is under it)."""

    def over(self, backlog: int, now: float) -> bool:
        """Whether a client with `backlog` unsent bytes at time `now` is to be dropped."""
        if backlog > self.hard_bytes:
            return True
        if backlog <= self.soft_bytes:
            self.over_soft_since = None
            return False
        if self.over_soft_since is None:
            self.over_soft_since = now
        return now - self.over_soft_since > self.soft_seconds


@dataclass(frozen=True, slots=True)
class PubSubCommandSpec:
    """A pub/sub command's Redis metadata (COMMAND INFO / DOCS); served by the node's
    pub/sub glue, never by a region."""

    name: str
    arity: int
    flags: tuple[str, ...]
    summary: str
    since: str
    complexity: str
    group: str = "pubsub"
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    acl_categories: tuple[str, ...] = ("@pubsub", "@slow")
    tips: tuple[str, ...] = ()


_SUB_FLAGS = ("pubsub", "noscript", "loading", "stale")

PUBSUB_COMMANDS: dict[str, PubSubCommandSpec] = {
    s.name: s
    for s in (
        PubSubCommandSpec(
            "subscribe",
            -2,
            _SUB_FLAGS,
            "Listen for messages published to channels",
            "2.0.0",
            "O(N) where N is the number of channels to subscribe to.",
        ),
        PubSubCommandSpec(
            "psubscribe",
            -2,
            _SUB_FLAGS,
            "Listen for messages published to channels matching the given patterns",
            "2.0.0",
            "O(N) where N is the number of patterns the client is already subscribed to.",
        ),
        PubSubCommandSpec(
            "unsubscribe",
            -1,
            _SUB_FLAGS,
            "Stop listening for messages posted to the given channels",
            "2.0.0",
            "O(N) where N is the number of clients already subscribed to a channel.",
        ),
        PubSubCommandSpec(
            "punsubscribe",
            -1,
            _SUB_FLAGS,
            "Stop listening for messages posted to channels matching the given patterns",
            "2.0.0",
            "O(N+M) where N is the number of patterns the client is already "
            "subscribed and M is the number of total patterns subscribed in the system.",
        ),
        PubSubCommandSpec(
            "publish",
            3,
            ("pubsub", "loading", "stale", "fast", "may_replicate"),
            "Post a message to a channel",
            "2.0.0",
            "O(N+M) where N is the number of clients subscribed to the receiving channel "
            "and M is the total number of subscribed patterns (by any client).",
            acl_categories=("@pubsub", "@fast"),
        ),
        PubSubCommandSpec(
            "ssubscribe",
            -2,
            _SUB_FLAGS,
            "Listen for messages published to the given shard channels",
            "7.0.0",
            "O(N) where N is the number of shard channels to subscribe to.",
            first_key=1,
            last_key=-1,
            step=1,
        ),
        PubSubCommandSpec(
            "sunsubscribe",
            -1,
            _SUB_FLAGS,
            "Stop listening for messages posted to the given shard channels",
            "7.0.0",
            "O(N) where N is the number of clients already subscribed to a shard channel.",
            first_key=1,
            last_key=-1,
            step=1,
        ),
        PubSubCommandSpec(
            "spublish",
            3,
            ("pubsub", "loading", "stale", "fast", "may_replicate"),
            "Post a message to a shard channel",
            "7.0.0",
            "O(N) where N is the number of clients subscribed to the receiving shard channel.",
            first_key=1,
            last_key=1,
            step=1,
            acl_categories=("@pubsub", "@fast"),
        ),
        PubSubCommandSpec(
            "pubsub",
            -2,
            (),
            "A container for Pub/Sub commands",
            "2.8.0",
            "Depends on subcommand.",
            acl_categories=(),
        ),
    )
}
"""The pub/sub commands Cairn serves."""


def shard_channels_error(channels: Sequence[bytes]) -> ErrorReply | None:
    """CROSSSLOT when the shard channels named do not all hash to one slot, as Redis
    Cluster refuses SSUBSCRIBE / SUNSUBSCRIBE over several slots; None when they do."""
    return CROSSSLOT if len({key_slot(ch) for ch in channels}) > 1 else None


def shard_redirect(
    channel: bytes, topology: Topology, client: ClientRouting, policy: RoutingPolicy
) -> ErrorReply | None:
    """MOVED to the leader of the region owning `channel`'s slot, for a client that follows
    MOVED (`cairn.shard.routing`), when that leader is another node: where Redis Cluster
    clients send SSUBSCRIBE and SPUBLISH (a READONLY client is served on any node with a
    replica of the region, as a Redis replica serves them). None: serve it here.

    Where it is served does not change who receives a message: SPUBLISH reaches the shard
    channel's subscribers on every node, as PUBLISH does."""
    if not client_redirects(policy, client):
        return None
    region = topology.region_of(channel)
    if client.readonly and region is not None and region.peer_on(topology.my_id) is not None:
        return None  # READONLY: as a Redis replica of the slot serves sharded pub/sub
    moved = moved_to_leader(key_slot(channel), topology)
    return None if moved is None else moved.reply
