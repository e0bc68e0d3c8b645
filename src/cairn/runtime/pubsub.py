"""Pub/sub across the cluster: the node's I/O around `cairn.shard.pubsub`.

Theory of operation. Subscriptions live on the node the subscriber is connected to
(`PubSubRegistry`). PUBLISH on a node delivers the message to that node's subscribers
(each push is queued on the subscriber's connection, behind the replies of the commands
it sent before), then queues one PUBLISH frame for every connected peer; a peer delivers
it to its own subscribers. SPUBLISH travels the same way (to shard channel subscribers,
after Redis Cluster's CROSSSLOT and MOVED checks). PUBLISH replies with the number of
receivers on the publishing node only, as Redis Cluster does. Order per publisher
holds: a client's PUBLISHes run in its program order, local pushes are queued in that
order, and the frames to one peer go, in order, down the single TCP connection to it.

Nothing is stored or retried (at-most-once, as in Redis): a peer that is not connected,
or whose link is backed up past the transport's limit, misses the message; a subscriber
that does not read fast enough is disconnected once its backlog passes the
`pubsub_output_*` limits (Redis's `client-output-buffer-limit pubsub`).

`intercept` is the node's entry point: it serves the pub/sub commands and enforces the
RESP2 subscriber mode before any command is routed to a region.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cairn.resp.codec import encode
from cairn.resp.reply import ErrorReply, Integer, Reply
from cairn.runtime.config import Limits
from cairn.runtime.frames import FrameError, FrameKind
from cairn.runtime.server import ClientConnection, Done, RespServer
from cairn.runtime.transport import TcpTransport
from cairn.shard.pubsub import (
    ALLOWED_IN_SUBSCRIBER_MODE,
    PUBSUB_COMMANDS,
    OutputLimit,
    PubSubRegistry,
    full_name,
    pubsub_command,
    pubsub_lookup_error,
    shard_channels_error,
    shard_redirect,
    subscriber_mode_error,
    subscriber_ping,
)
from cairn.shard.routing import RoutingPolicy
from cairn.shard.topology import Topology

log = logging.getLogger("cairn.pubsub")

FRAME_OVERHEAD = 64
"""Bytes a PUBLISH frame adds to its channel and message (kind, lengths, msgpack tags)."""

Known = Callable[[str, int], bool]
"""Whether a command name exists and takes that many arguments (name included)."""

_SUBSCRIBE_FAMILY = {
    "subscribe": PubSubRegistry.subscribe,
    "psubscribe": PubSubRegistry.psubscribe,
    "unsubscribe": PubSubRegistry.unsubscribe,
    "punsubscribe": PubSubRegistry.punsubscribe,
    "ssubscribe": PubSubRegistry.ssubscribe,
    "sunsubscribe": PubSubRegistry.sunsubscribe,
}
_SHARDED = frozenset({"ssubscribe", "sunsubscribe", "spublish"})


class PubSub:
    """This node's subscribers, and the PUBLISH frames to and from its peers."""

    def __init__(
        self,
        transport: TcpTransport,
        limits: Limits,
        known: Known,
        topology: Callable[[], Topology],
        policy: RoutingPolicy,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = PubSubRegistry()
        self.transport = transport
        self.limits = limits
        self.server: RespServer | None = None
        self._known = known
        self._topology = topology
        self._policy = policy
        self._monotonic = monotonic
        self._output: dict[int, OutputLimit] = {}
        self.max_broadcast = transport.config.max_frame - FRAME_OVERHEAD
        """The largest channel plus message a PUBLISH may carry (one peer frame)."""
        self.stats = {"published": 0, "received_from_peers": 0, "slow_subscribers_dropped": 0}
        transport.handlers[FrameKind.PUBLISH] = self._on_publish_frame

    def attach(self, server: RespServer) -> None:
        """Serve `server`'s clients: forget a client's subscriptions when it goes away."""
        self.server = server
        server.on_disconnect = self.forget
        server.limiter.is_subscriber = self.registry.subscribed  # `timeout` spares them

    def forget(self, client_id: int) -> None:
        """Drop every subscription of a client (disconnected, or RESET)."""
        self.registry.forget(client_id)
        self._output.pop(client_id, None)

    # -- commands ------------------------------------------------------------------------

    def intercept(self, client: ClientConnection, name: str, args: list[bytes], done: Done) -> bool:
        """Serve `args` if it is a pub/sub command or refused in subscriber mode (True);
        False: the node routes it as usual."""
        state = client.state
        assert state is not None
        if name in PUBSUB_COMMANDS:
            self._serve(client, name, args, done)
            return True
        if name == "reset":
            self.forget(state.id)
            return False
        if client.protocol != 2 or not self.registry.subscribed(state.id):
            return False
        if name == "ping" and len(args) <= 2:
            done(subscriber_ping(args))
            return True
        if name in ALLOWED_IN_SUBSCRIBER_MODE or not self._known(name, len(args)):
            return False  # QUIT, or an unknown command or wrong arity: Redis's usual error
        done(subscriber_mode_error(full_name(name, args)))
        return True

    def _serve(self, client: ClientConnection, name: str, args: list[bytes], done: Done) -> None:
        state = client.state
        assert state is not None
        spec = PUBSUB_COMMANDS[name]
        argc = len(args)
        if argc != spec.arity if spec.arity > 0 else argc < -spec.arity:
            done(ErrorReply(f"ERR wrong number of arguments for '{name}' command"))
            return
        if name in _SHARDED and len(args) > 1:
            refusal = self._shard_refusal(client, args[1:] if name != "spublish" else args[1:2])
            if refusal is not None:
                done(refusal)
                return
        family = _SUBSCRIBE_FAMILY.get(name)
        if family is not None:
            replies = family(self.registry, state.id, args[1:])
            done(b"".join(encode(r, client.protocol) for r in replies))
            return
        if client.protocol == 2 and self.registry.subscribed(state.id):
            lookup = pubsub_lookup_error(args[1:]) if name == "pubsub" else None
            done(lookup or subscriber_mode_error(full_name(name, args)))
            return
        if name == "pubsub":
            done(pubsub_command(self.registry, args[1:]))
            return
        channel, message, sharded = args[1], args[2], name == "spublish"

        def start(finished: Callable[[], None]) -> None:
            done(self.publish(channel, message, sharded))
            finished()

        # As a read: it waits for the client's earlier writes to be applied, so whoever
        # receives the message can read what its publisher wrote before publishing.
        state.order.submit(False, start)

    def _shard_refusal(self, client: ClientConnection, channels: list[bytes]) -> ErrorReply | None:
        """CROSSSLOT, or MOVED for a client that follows it, as Redis Cluster answers the
        sharded commands; None: serve them here."""
        state = client.state
        assert state is not None
        error = shard_channels_error(channels)
        if error is not None:
            return error
        return shard_redirect(channels[0], self._topology(), state.routing, self._policy)

    # -- publishing ----------------------------------------------------------------------

    def publish(self, channel: bytes, message: bytes, sharded: bool = False) -> Reply:
        """Deliver here, send to every peer; the reply counts the receivers here.
        `sharded`: SPUBLISH, for the shard channel's subscribers."""
        if len(channel) + len(message) > self.max_broadcast:
            return ErrorReply(
                f"ERR the channel and message of a PUBLISH may not exceed "
                f"{self.max_broadcast} bytes together in Cairn (one peer frame)"
            )
        self.stats["published"] += 1
        receivers = self._deliver(channel, message, sharded)
        frame: list[Any] = [FrameKind.PUBLISH, channel, message]
        if sharded:
            frame.append(True)
        for peer in sorted(self.transport.peers):
            self.transport.send_frame(peer, frame)
        return Integer(receivers)

    def _on_publish_frame(self, peer: int, frame: list[Any]) -> None:
        valid = len(frame) == 3 or (len(frame) == 4 and frame[3] is True)
        if not valid or not all(isinstance(f, bytes) for f in frame[1:3]):
            raise FrameError("malformed PUBLISH frame")
        sharded = len(frame) == 4
        self.stats["received_from_peers"] += 1
        self._deliver(frame[1], frame[2], sharded)

    def _deliver(self, channel: bytes, message: bytes, sharded: bool) -> int:
        """Queue the message for every subscriber here; how many pushes were made."""
        registry = self.registry
        if sharded:
            deliveries = registry.shard_deliveries(channel, message)
        else:
            deliveries = registry.deliveries(channel, message)
        server = self.server
        if server is None:
            return len(deliveries)
        encoded: dict[tuple[int, int], bytes] = {}
        for d in deliveries:
            entry = server.clients.get(d.client)
            if entry is None:
                continue
            conn = entry[0]
            key = (id(d.push), conn.protocol)
            data = encoded.get(key)
            if data is None:
                data = encoded[key] = encode(d.push, conn.protocol)
            conn.push(data)
            self._enforce_limit(d.client, conn)
        return len(deliveries)

    def _enforce_limit(self, client_id: int, conn: ClientConnection) -> None:
        limit = self._output.get(client_id)
        if limit is None:
            lim = self.limits if self.server is None else self.server.limits  # CONFIG SET
            limit = self._output[client_id] = OutputLimit(
                lim.pubsub_output_hard_limit_bytes,
                lim.pubsub_output_soft_limit_bytes,
                lim.pubsub_output_soft_limit_seconds,
            )
        if limit.over(conn.output_backlog(), self._monotonic()):
            log.warning(
                "closing subscriber %s: over the pubsub output buffer limit",
                conn.state.addr if conn.state is not None else "?",
            )
            self.stats["slow_subscribers_dropped"] += 1
            conn.abort()
