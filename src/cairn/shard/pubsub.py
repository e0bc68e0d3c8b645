"""Pub/sub on one node: who listens to what, and what each listener is sent (pure).

Theory of operation. Redis pub/sub is fire-and-forget: a message PUBLISHed on a channel is
pushed to every client subscribed to that channel, or to a glob pattern matching it, at
that moment, and kept nowhere. In a cluster a message published on any node is broadcast
to every node (Redis Cluster sends it over its bus; Cairn sends one PUBLISH frame per
peer), and each node delivers it to its own subscribers. This module is one node's part:

- `PubSubRegistry` holds the subscriptions of the clients connected to this node (channel
  -> subscribers, pattern -> subscribers, client -> its channels and patterns), answers
  the SUBSCRIBE family with Redis's confirmations, decides who receives a message
  (`deliveries`) and answers PUBSUB CHANNELS / NUMSUB / NUMPAT from this node's view, as
  Redis Cluster does.
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

from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.resp.reply import NULL, Array, Bulk, ErrorReply, Integer, Push, Reply, SimpleString
from cairn.store.glob import stringmatch

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
    "HELP",
    "    Prints this help.",
)
"""PUBSUB HELP, Redis 7.0's text without the sharded subcommands Cairn does not serve."""


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


def _confirmation(kind: bytes, name: bytes | None, count: int) -> Push:
    return Push((Bulk(kind), NULL if name is None else Bulk(name), Integer(count)))


@dataclass(slots=True)
class ClientSubscriptions:
    """One client's channels and patterns, in the order it subscribed."""

    channels: dict[bytes, None] = field(default_factory=dict)
    patterns: dict[bytes, None] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """What the confirmations count: channels plus patterns (Redis's
        `clientSubscriptionsCount`)."""
        return len(self.channels) + len(self.patterns)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one client: its id and what it is sent."""

    client: int
    push: Push


class PubSubRegistry:
    """Every subscription of the clients connected to one node.

    Invariant: client c is in `_channels[ch]` iff ch is in `_clients[c].channels` (and the
    same for patterns); no entry is ever empty (it is removed with its last subscriber).
    """

    def __init__(self) -> None:
        self._clients: dict[int, ClientSubscriptions] = {}
        self._channels: dict[bytes, dict[int, None]] = {}
        self._patterns: dict[bytes, dict[int, None]] = {}

    # -- one client's subscriptions ----------------------------------------------------

    def count(self, client: int) -> int:
        """How many channels and patterns `client` listens to."""
        subs = self._clients.get(client)
        return 0 if subs is None else subs.count

    def subscribed(self, client: int) -> bool:
        """Whether `client` is in subscriber mode (it listens to something)."""
        return self.count(client) > 0

    def subscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """SUBSCRIBE: one confirmation per channel named (repeats included)."""
        return [self._add(client, ch, b"subscribe", self._channels, False) for ch in channels]

    def psubscribe(self, client: int, patterns: Sequence[bytes]) -> list[Reply]:
        """PSUBSCRIBE: one confirmation per pattern named."""
        return [self._add(client, p, b"psubscribe", self._patterns, True) for p in patterns]

    def unsubscribe(self, client: int, channels: Sequence[bytes]) -> list[Reply]:
        """UNSUBSCRIBE [channel ...]: every channel when none is named; one confirmation
        per channel, or one with a null channel when there was none to leave."""
        return self._remove_many(client, channels, b"unsubscribe", False)

    def punsubscribe(self, client: int, patterns: Sequence[bytes]) -> list[Reply]:
        """PUNSUBSCRIBE [pattern ...], as `unsubscribe` for patterns."""
        return self._remove_many(client, patterns, b"punsubscribe", True)

    def forget(self, client: int) -> None:
        """Drop every subscription of `client` (it disconnected, or sent RESET)."""
        subs = self._clients.pop(client, None)
        if subs is None:
            return
        for ch in subs.channels:
            _discard(self._channels, ch, client)
        for p in subs.patterns:
            _discard(self._patterns, p, client)

    def _own(self, client: int, pattern: bool) -> dict[bytes, None]:
        subs = self._clients.setdefault(client, ClientSubscriptions())
        return subs.patterns if pattern else subs.channels

    def _add(
        self,
        client: int,
        name: bytes,
        kind: bytes,
        index: dict[bytes, dict[int, None]],
        pattern: bool,
    ) -> Reply:
        own = self._own(client, pattern)
        if name not in own:
            own[name] = None
            index.setdefault(name, {})[client] = None
        return _confirmation(kind, name, self.count(client))

    def _remove_many(
        self, client: int, names: Sequence[bytes], kind: bytes, pattern: bool
    ) -> list[Reply]:
        if not names:
            names = list(self._own(client, pattern))
        replies = [self._remove(client, name, kind, pattern) for name in names]
        if not replies:
            replies.append(_confirmation(kind, None, self.count(client)))
        if self.count(client) == 0:
            self._clients.pop(client, None)
        return replies

    def _remove(self, client: int, name: bytes, kind: bytes, pattern: bool) -> Reply:
        own = self._own(client, pattern)
        if name in own:
            del own[name]
            _discard(self._patterns if pattern else self._channels, name, client)
        return _confirmation(kind, name, self.count(client))

    # -- fan-out -------------------------------------------------------------------------

    def deliveries(self, channel: bytes, payload: bytes) -> list[Delivery]:
        """Who receives a message published on `channel`, and what: every subscriber of
        the channel, then every subscriber of each matching pattern (a client listening
        both ways, or through several patterns, gets one push per subscription)."""
        out = [Delivery(c, message_push(channel, payload)) for c in self._channels.get(channel, ())]
        for pattern, clients in self._patterns.items():
            if stringmatch(pattern, channel):
                push = pmessage_push(pattern, channel, payload)
                out.extend(Delivery(c, push) for c in clients)
        return out

    # -- PUBSUB ----------------------------------------------------------------------------

    def channels(self, pattern: bytes | None = None) -> list[bytes]:
        """The channels with a subscriber here, matching `pattern` when given."""
        return [ch for ch in self._channels if pattern is None or stringmatch(pattern, ch)]

    def numsub(self, channel: bytes) -> int:
        """How many clients here subscribe to `channel` (patterns not counted)."""
        return len(self._channels.get(channel, ()))

    def numpat(self) -> int:
        """How many distinct patterns clients here subscribe to (Redis 7.0 counts
        patterns, not pattern subscriptions)."""
        return len(self._patterns)


def _discard(index: dict[bytes, dict[int, None]], name: bytes, client: int) -> None:
    clients = index.get(name)
    if clients is not None:
        clients.pop(client, None)
        if not clients:
            del index[name]


_PUBSUB_ARITY = {b"channels": -2, b"numpat": 2, b"numsub": -2, b"help": 2}


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
    if sub == b"channels":
        if len(args) > 2:
            text = args[0].decode("utf-8", "replace")
            return ErrorReply(
                f"ERR unknown subcommand or wrong number of arguments for '{text}'. "
                "Try PUBSUB HELP."
            )
        pattern = args[1] if len(args) == 2 else None
        return Array(tuple(Bulk(ch) for ch in registry.channels(pattern)))
    if sub == b"numsub":
        items: list[Reply] = []
        for ch in args[1:]:
            items += [Bulk(ch), Integer(registry.numsub(ch))]
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
"""The pub/sub commands Cairn serves (sharded pub/sub is not among them)."""
