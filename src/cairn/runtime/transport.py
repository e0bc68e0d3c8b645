"""The real peer transport: length-prefixed msgpack frames over TCP, one connection per pair.

Theory of operation. Of two peers, the one with the smaller node id dials and keeps
redialling with capped, jittered exponential backoff; the other only accepts. Both sides
first prove that they know the cluster secret (`cairn.runtime.peer_auth`: tiny frames, a
deadline), then say HELLO (cluster, node, client address); a connection that fails either
(a wrong secret, another cluster, a bad protocol version, a node id that is impossible or
not the one dialled) is closed with one log line. A node this one does not know (neither
configured nor learned from the placement group) may only announce itself (a join).
With mutual TLS (`peer_tls`), the connection is TLS both ways first (certificates signed by
the cluster's CA required on both ends, within the same handshake deadline), and the node id
the other side's certificate names must be the node dialled and the node that the PROOF
claims (`Handshake.certified`), else the connection is closed with one log line.
Every later frame is checked before use (`cairn.runtime.frame_checks`): anything
malformed closes the connection, again with one log line. Once up, one connection carries
traffic both ways: region-tagged envelopes between region hosts (`ENVELOPES`, the
placement group's included; a large snapshot as an `ENVELOPE_CHUNK` stream), forwarded
client commands (naming the region and epoch the sender routed by), and the frames of the
layers above (placement, pub/sub, admin). The frame kinds of the retired standalone
placement replica (`RETIRED_KINDS`) are dropped with one warning per connection.

Sending never blocks: frames are queued per peer and flushed once per event-loop turn
(`send_frame`) or written at once (`send_frames_now`). Raft tolerates loss, so frames for
a peer that is down, or whose socket buffer is over `max_pending_bytes`, are dropped and
counted, never queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cairn.raft.types import NodeId
from cairn.raft.wire import WireFormatError
from cairn.runtime.frame_checks import (
    check_chunk,
    check_envelopes,
    check_forward,
    check_forward_reply,
    check_join_peers,
    check_peers,
    check_placement,
    check_regions,
)
from cairn.runtime.frames import (
    PROTOCOL_VERSION,
    RETIRED_KINDS,
    FrameDecoder,
    FrameError,
    FrameKind,
    Hello,
    encode_frame,
    parse_hello,
)
from cairn.runtime.peer_auth import (
    HANDSHAKE_MAX_BUFFER,
    HANDSHAKE_MAX_FRAME,
    HANDSHAKE_TIMEOUT,
    NONCE_SIZE,
    Handshake,
    HandshakeError,
    Role,
    certificate_node_id,
)

log = logging.getLogger("cairn.transport")

Address = tuple[str, int]
ForwardTarget = tuple[int, int, int]
"""(region id, epoch version, epoch conf_ver) a forwarded command was routed to."""
ForwardHandler = Callable[[NodeId, int, int, list[bytes], ForwardTarget | None, str], None]
"""(from node, request id, protocol, args, target or None, ACL user): run a command a peer
forwarded."""
EnvelopeFrameHandler = Callable[[NodeId, list[Any]], None]
"""(from node, encoded envelopes): what an ENVELOPES frame (or a reassembled chunk
stream, as a one-item list) carries."""
ChunkedEnvelopeHandler = Callable[[NodeId, Any, bytes], None]
"""(from node, encoded envelope head, snapshot data): a reassembled ENVELOPE_CHUNK stream."""
ForwardReplyHandler = Callable[[int, bytes], None]
"""(request id, encoded reply): the answer to a command we forwarded."""
FrameHandler = Callable[[NodeId, list[Any]], None]
"""(from node, whole frame): a frame of a kind served by a layer above the transport."""


@dataclass(slots=True)
class TransportStats:
    """Counters for INFO and metrics."""

    frames_sent: int = 0
    frames_received: int = 0
    messages_dropped: int = 0
    connects: int = 0
    rejected_peers: int = 0


@dataclass(slots=True)
class TransportConfig:
    """Limits and timing of the peer transport."""

    cluster_id: str = "cairn"
    client_addr: str = ""
    """This node's advertised client address (`host:port`), announced in the handshake."""
    max_frame: int = 256 << 20
    max_pending_bytes: int = 64 << 20
    snapshot_chunk: int = 1 << 20
    max_snapshot: int = 64 << 30
    """Snapshots larger than this travel as a stream of chunks of this size."""
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    connect_timeout: float = 2.0
    secret: bytes = field(default=b"", repr=False)
    """The cluster secret both sides of the handshake prove they know (b"": the explicit
    insecure mode, where anyone who knows the protocol passes)."""
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    """Seconds a new connection has to authenticate and say HELLO before it is closed (and,
    with TLS, as long again for the TLS handshake)."""
    tls_listener: ssl.SSLContext | None = None
    """Mutual TLS on the peer port (`cairn.runtime.tls.PeerTls`): the context accepted
    connections are wrapped in; None (with `tls_dialer`): plain TCP."""
    tls_dialer: ssl.SSLContext | None = None
    """The context of the connections this node opens (its certificate, the CA)."""


class PeerConnection(asyncio.Protocol):
    """One TCP connection to a peer: the handshake, then frames handed to the transport.

    Until the other side is authenticated (`peer_auth`) and has said HELLO, frames may
    be at most `HANDSHAKE_MAX_FRAME` bytes, at most `HANDSHAKE_MAX_BUFFER` bytes may
    stay buffered, and the whole must be over within `handshake_timeout` seconds.
    """

    def __init__(self, owner: TcpTransport, expected: NodeId | None) -> None:
        self.owner = owner
        self.expected = expected
        self.peer: NodeId | None = None
        """The peer's node id, once authenticated and its HELLO accepted."""
        cfg = owner.config
        role = Role.ACCEPTOR if expected is None else Role.DIALER
        self.handshake = Handshake(
            role,
            cfg.secret,
            cfg.cluster_id,
            owner.node_id,
            secrets.token_bytes(NONCE_SIZE),
            expected=expected,
            knows=owner.knows,
        )
        self.decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        if self.owner.config.tls_listener is not None and not self._check_certificate():
            return
        self._send(self.handshake.start())
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.owner.config.handshake_timeout, self._timed_out)

    def _check_certificate(self) -> bool:
        """With TLS (already completed, the chain verified): the node id the peer's
        certificate names, which is all it may claim; false when the connection was
        refused (no node id, or not the node dialled)."""
        assert self.transport is not None
        named = certificate_node_id(self.transport.get_extra_info("peercert"))
        problem = ""
        if named is None:
            problem = "its TLS certificate names no node id"
        elif self.expected is not None and named != self.expected:
            problem = f"dialled node {self.expected} but its TLS certificate names node {named}"
        if problem:
            self.owner.refuse(self, problem)
            return False
        self.handshake.certified = named
        return True

    def _send(self, frames: list[list[Any]]) -> None:
        if frames and self.transport is not None:
            self.transport.write(b"".join(encode_frame(f) for f in frames))

    def _timed_out(self) -> None:
        if self.peer is None:
            timeout = self.owner.config.handshake_timeout
            self.owner.refuse(self, f"no handshake within {timeout:g} s")

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.feed(data)
            while not self.closing and (frame := self.decoder.next_frame()) is not None:
                self._on_frame(frame)
            if self.peer is None and self.decoder.buffered > HANDSHAKE_MAX_BUFFER:
                raise FrameError("too many bytes before the handshake is over")
        except (FrameError, WireFormatError) as exc:
            self.owner.refuse(self, str(exc))
        except Exception as exc:  # a handler's bug: one line, not a traceback per frame
            self.owner.refuse(self, f"failed on a frame: {type(exc).__name__}: {exc}")

    @property
    def closing(self) -> bool:
        """Whether the socket is closed or closing (nothing more is read from it)."""
        return self.transport is None or self.transport.is_closing()

    def _on_frame(self, frame: list[Any]) -> None:
        if not self.handshake.done:
            self._send(self.handshake.receive(frame))
            if self.handshake.done:
                self.decoder.max_frame = self.owner.config.max_frame
                self._send([self.owner.hello_frame()])
            return
        if self.peer is None:
            self._on_hello(parse_hello(frame))
            return
        self.owner.stats.frames_received += 1
        self.owner.dispatch(self.peer, frame, restricted=self.handshake.restricted)

    def _on_hello(self, hello: Hello) -> None:
        authenticated = self.handshake.peer
        assert authenticated is not None
        problem = self.owner.vet_hello(hello, authenticated)
        if problem:
            raise FrameError(problem)
        if self._timer is not None:
            self._timer.cancel()
        self.peer = authenticated
        if hello.client_addr and not self.handshake.restricted:
            self.owner.client_addrs[authenticated] = hello.client_addr
        self.owner.attach(authenticated, self)

    def write(self, data: bytes) -> bool:
        """Write a frame unless the socket is backed up; false when dropped."""
        t = self.transport
        if t is None or t.is_closing():
            return False
        if t.get_write_buffer_size() > self.owner.config.max_pending_bytes:
            return False
        t.write(data)
        return True

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.peer is not None:
            self.owner.detach(self.peer, self)
        if not self.closed.done():
            self.closed.set_result(None)


class _RefusalLog:
    """One log line per refused connection, and, before authentication, at most one a
    second (with a count of those not logged): strangers must not fill the log."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = -1e18
        self._quiet = 0

    def refused(self, who: str, reason: str, authenticated: bool, now: float) -> None:
        if not authenticated and now - self._last < self.interval:
            self._quiet += 1
            return
        more = f" ({self._quiet} more refused since)" if self._quiet else ""
        self._last, self._quiet = now, 0
        log.warning("closing the peer connection %s: %s%s", who, reason, more)


@dataclass(slots=True)
class _PartialSnapshot:
    stream: int
    message: Any
    """The encoded envelope the stream's first piece carried."""
    pieces: list[bytes] = field(default_factory=list)
    next_seq: int = 0


@dataclass(slots=True)
class _Outbox:
    other: list[bytes] = field(default_factory=list)
    other_bytes: int = 0
    """Bytes of the frames queued by `send_frame` (read by `backlog`)."""


class TcpTransport:
    """The peer links of a real node: framed, authenticated connections to every peer."""

    def __init__(
        self,
        node_id: NodeId,
        listen: Address,
        peers: dict[NodeId, Address],
        config: TransportConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.listen = listen
        self.peers = dict(peers)
        self.config = config or TransportConfig()
        self.rng = rng or random.Random()
        self.stats = TransportStats()
        self.on_forward: ForwardHandler | None = None
        self.on_forward_reply: ForwardReplyHandler | None = None
        self.on_envelopes: EnvelopeFrameHandler | None = None
        self.on_chunked_envelope: ChunkedEnvelopeHandler | None = None
        self.handlers: dict[FrameKind, FrameHandler] = {}
        """Handlers of the frame kinds the transport itself does not serve (placement)."""
        self._conns: dict[NodeId, PeerConnection] = {}
        self.client_addrs: dict[NodeId, str] = {}
        """The client address each peer announced in its last handshake."""
        self.links_version = 0
        """Grows whenever a peer connects or disconnects (and so may have announced a new
        client address): what the node's cached layout depends on."""
        self._outbox: dict[NodeId, _Outbox] = {}
        self._flush_scheduled = False
        self._server: asyncio.Server | None = None
        self._dialers: dict[NodeId, asyncio.Task[None]] = {}
        self._running = False
        self._next_stream = 0
        self._incoming: dict[tuple[NodeId, int], _PartialSnapshot] = {}
        self._refusals = _RefusalLog()
        self._retired_warned: set[NodeId] = set()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for peers and start dialling those with larger ids."""
        loop = asyncio.get_running_loop()
        self._running = True
        self._server = await loop.create_server(
            lambda: PeerConnection(self, None),
            self.listen[0],
            self.listen[1],
            reuse_address=True,
            **self._tls_args(self.config.tls_listener),
        )
        for peer in sorted(self.peers):
            self._ensure_dialer(peer)

    @property
    def bound_address(self) -> Address:
        """The address actually listened on (useful when `listen` asked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.listen
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Close every connection and stop dialling."""
        self._running = False
        for task in self._dialers.values():
            task.cancel()
        # Connections close before the dialers are awaited: a dialer whose connect
        # completed as it was cancelled (Python 3.11's wait_for may then drop the
        # cancellation) waits for its connection to close, so awaiting it first hangs.
        for conn in list(self._conns.values()):
            conn.close()
        for task in self._dialers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._dialers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def add_peer(self, node_id: NodeId, address: Address) -> None:
        """Learn (or update) a peer's address, e.g. after a membership change."""
        self.peers[node_id] = address
        if self._running:
            self._ensure_dialer(node_id)

    def remove_peer(self, node_id: NodeId) -> None:
        """Forget a peer and drop its connection."""
        self.peers.pop(node_id, None)
        task = self._dialers.pop(node_id, None)
        if task is not None:
            task.cancel()
        conn = self._conns.pop(node_id, None)
        if conn is not None:
            conn.close()

    def _ensure_dialer(self, peer: NodeId) -> None:
        if peer > self.node_id and peer not in self._dialers:
            self._dialers[peer] = asyncio.get_running_loop().create_task(self._dial_forever(peer))

    async def _dial_forever(self, peer: NodeId) -> None:
        backoff = self.config.backoff_initial
        loop = asyncio.get_running_loop()
        tls_failure = ""
        while self._running and peer in self.peers:
            host, port = self.peers[peer]
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: PeerConnection(self, peer),
                        host,
                        port,
                        **self._tls_args(self.config.tls_dialer),
                    ),
                    self.config.connect_timeout + self._tls_time(),
                )
            except (TimeoutError, OSError) as exc:
                if isinstance(exc, ssl.SSLError) and str(exc) != tls_failure:
                    tls_failure = str(exc)  # logged once per distinct reason, not per retry
                    log.warning("TLS handshake with node %d (%s:%d): %s", peer, host, port, exc)
                await asyncio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            backoff, tls_failure = self.config.backoff_initial, ""
            if not self._running:  # stopped while connecting: see `stop`
                conn.close()
                return
            await conn.closed
            await asyncio.sleep(self.config.backoff_initial * self.rng.random())

    def _tls_args(self, context: ssl.SSLContext | None) -> dict[str, Any]:
        """The TLS keywords of `create_server`/`create_connection` (none without TLS)."""
        if context is None:
            return {}
        return {"ssl": context, "ssl_handshake_timeout": self.config.handshake_timeout}

    def _tls_time(self) -> float:
        return self.config.handshake_timeout if self.config.tls_dialer is not None else 0.0

    async def open_stream(
        self, address: Address, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to a peer port as streams (a `join` address), over TLS when the
        peer port speaks it; then `dial_handshake`."""
        return await asyncio.wait_for(
            asyncio.open_connection(*address, **self._tls_args(self.config.tls_dialer)),
            timeout + self._tls_time(),
        )

    # -- connections ------------------------------------------------------------------

    def knows(self, node: NodeId) -> bool:
        """Whether `node` is a peer this node knows: configured, or learned from the
        placement group's membership (a stranger may only announce itself)."""
        return node in self.peers

    def hello_frame(self) -> list[Any]:
        """The HELLO this node sends once the other side is authenticated."""
        cfg = self.config
        return [FrameKind.HELLO, PROTOCOL_VERSION, cfg.cluster_id, self.node_id, cfg.client_addr]

    def vet_hello(self, hello: Hello, authenticated: NodeId) -> str:
        """Why an authenticated peer's HELLO is refused ("" if it is accepted)."""
        if hello.version != PROTOCOL_VERSION:
            return f"peer speaks protocol {hello.version}, we speak {PROTOCOL_VERSION}"
        if hello.cluster_id != self.config.cluster_id:
            return f"peer belongs to cluster {hello.cluster_id!r}"
        if hello.node_id != authenticated:
            return f"node {authenticated} said HELLO as node {hello.node_id}"
        return ""

    def refuse(self, conn: PeerConnection, reason: str) -> None:
        """Close `conn` for `reason`, with one log line (rate-limited for strangers)."""
        if conn.closing:
            return
        authenticated = conn.handshake.done
        if not authenticated:
            self.stats.rejected_peers += 1
        who = f"of node {conn.handshake.peer}" if authenticated else "from an unauthenticated peer"
        self._refusals.refused(who, reason, authenticated, asyncio.get_running_loop().time())
        conn.close()

    async def dial_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[NodeId, FrameDecoder]:
        """Authenticate a connection this node opened to a `join` address (whose node it
        cannot know), over streams; the node that answered and a decoder holding any
        bytes received after the handshake. Sends this node's HELLO."""
        cfg = self.config
        nonce = secrets.token_bytes(NONCE_SIZE)
        hs = Handshake(Role.DIALER, cfg.secret, cfg.cluster_id, self.node_id, nonce)
        if cfg.tls_dialer is not None:
            hs.certified = certificate_node_id(writer.get_extra_info("peercert"))
            if hs.certified is None:
                raise HandshakeError("the join node's TLS certificate names no node id")
        decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        writer.write(b"".join(encode_frame(f) for f in hs.start()))
        async with asyncio.timeout(cfg.handshake_timeout):
            while not hs.done:
                data = await reader.read(HANDSHAKE_MAX_BUFFER)
                if not data:
                    raise HandshakeError("the peer closed the connection during the handshake")
                decoder.feed(data)
                while not hs.done and (frame := decoder.next_frame()) is not None:
                    writer.write(b"".join(encode_frame(f) for f in hs.receive(frame)))
        assert hs.peer is not None
        decoder.max_frame = cfg.max_frame
        writer.write(encode_frame(self.hello_frame()))
        return hs.peer, decoder

    def attach(self, peer: NodeId, conn: PeerConnection) -> None:
        """Use `conn` for `peer` from now on (a newer connection replaces an older one)."""
        old = self._conns.get(peer)
        self._conns[peer] = conn
        self._retired_warned.discard(peer)
        self.stats.connects += 1
        self.links_version += 1
        if old is not None and old is not conn:
            old.close()

    def detach(self, peer: NodeId, conn: PeerConnection) -> None:
        """Forget `conn` if it is still the one used for `peer`."""
        if self._conns.get(peer) is conn:
            del self._conns[peer]
            self.links_version += 1

    def connected(self, peer: NodeId) -> bool:
        """Whether a live connection to `peer` exists."""
        return peer in self._conns

    # -- sending ----------------------------------------------------------------------

    def send_frame(self, to: NodeId, payload: list[Any]) -> bool:
        """Queue a non-Raft frame (forwarding); false if the peer is not connected."""
        if to not in self._conns:
            return False
        box = self._outbox.setdefault(to, _Outbox())
        frame = encode_frame(payload)
        box.other.append(frame)
        box.other_bytes += len(frame)
        self._schedule_flush()
        return True

    def backlog(self, peer: NodeId) -> int:
        """Bytes waiting to reach `peer`: frames queued this turn and the socket's write
        buffer (a region leader bounds the forwarded replies it holds with it)."""
        box = self._outbox.get(peer)
        conn = self._conns.get(peer)
        t = None if conn is None else conn.transport
        return (0 if box is None else box.other_bytes) + (
            0 if t is None else t.get_write_buffer_size()
        )

    def send_frames_now(self, to: NodeId, frames: Sequence[bytes]) -> bool:
        """Write encoded frames to `to` at once (after anything queued for it); false if
        the peer is not connected (they are dropped)."""
        if to not in self._conns:
            return False
        box = self._outbox.pop(to, None) or _Outbox()
        box.other.extend(frames)
        self._flush_box(to, box)
        return True

    def chunk_frames(self, head: Any, data: bytes) -> list[bytes]:
        """`data` too large for one frame, as an ENVELOPE_CHUNK stream led by `head`."""
        size = self.config.snapshot_chunk
        self._next_stream += 1
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        return [
            encode_frame(
                [
                    FrameKind.ENVELOPE_CHUNK,
                    self._next_stream,
                    seq,
                    seq == len(pieces) - 1,
                    head if seq == 0 else None,
                    piece,
                ]
            )
            for seq, piece in enumerate(pieces)
        ]

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, {}
        for peer, box in outbox.items():
            self._flush_box(peer, box)

    def _flush_box(self, peer: NodeId, box: _Outbox) -> None:
        conn = self._conns.get(peer)
        if conn is None:
            self.stats.messages_dropped += len(box.other)
            return
        if conn.write(b"".join(box.other)):
            self.stats.frames_sent += len(box.other)
        else:
            self.stats.messages_dropped += len(box.other)

    # -- receiving ----------------------------------------------------------------------

    def _on_snapshot_chunk(self, peer: NodeId, frame: list[Any]) -> None:
        """Reassemble a chunked snapshot envelope; a gap (a dropped chunk) abandons the
        stream and Raft sends the snapshot again later."""
        chunk = check_chunk(frame)
        key = (peer, int(chunk.kind))
        partial = self._incoming.get(key)
        if chunk.seq == 0:
            partial = _PartialSnapshot(chunk.stream, chunk.head)
            self._incoming[key] = partial
        elif partial is None or partial.stream != chunk.stream or partial.next_seq != chunk.seq:
            self._incoming.pop(key, None)
            return
        partial.pieces.append(chunk.piece)
        partial.next_seq += 1
        if len(partial.pieces) * self.config.snapshot_chunk > self.config.max_snapshot:
            self._incoming.pop(key, None)
            raise FrameError("snapshot stream exceeds max_snapshot")
        if chunk.last:
            del self._incoming[key]
            if self.on_chunked_envelope is not None:
                self.on_chunked_envelope(peer, partial.message, b"".join(partial.pieces))

    def dispatch(self, peer: NodeId, frame: list[Any], *, restricted: bool = False) -> None:
        """Check one frame from `peer` and route it to its handler (`FrameError` when it
        is malformed, of an unknown kind, or more than a `restricted` peer may send)."""
        kind = frame[0]
        if type(kind) is not int or kind not in _DISPATCH:
            if type(kind) is int and kind in self.handlers and not restricted:
                self.handlers[FrameKind(kind)](peer, frame)
                return
            if type(kind) is int and kind in RETIRED_KINDS and not restricted:
                self._retired(peer, kind)
                return
            raise FrameError(f"unexpected frame kind {kind!r:.20}")
        if restricted and kind != FrameKind.PEERS:
            raise FrameError(f"node {peer} is no member here: it may only announce itself")
        _DISPATCH[FrameKind(kind)](self, peer, frame, restricted)

    def _retired(self, peer: NodeId, kind: int) -> None:
        """A frame of a retired kind (an older node's placement replica): dropped, with
        one warning per connection; the link's other traffic (its regions) goes on."""
        if peer not in self._retired_warned:
            self._retired_warned.add(peer)
            log.warning(
                "node %d sends %s frames of the retired standalone placement group: "
                "dropped; upgrade it to rejoin the placement group",
                peer,
                RETIRED_KINDS[kind],
            )

    def _on_envelopes(self, peer: NodeId, frame: list[Any], restricted: bool) -> None:
        items = check_envelopes(frame)
        if self.on_envelopes is not None:
            self.on_envelopes(peer, items)

    def _on_forward(self, peer: NodeId, frame: list[Any], restricted: bool) -> None:
        fwd = check_forward(frame)
        if self.on_forward is not None:
            self.on_forward(peer, fwd.request_id, fwd.protocol, fwd.argv, fwd.target, fwd.user)

    def _on_forward_reply(self, peer: NodeId, frame: list[Any], restricted: bool) -> None:
        request_id, data = check_forward_reply(frame)
        if self.on_forward_reply is not None:
            self.on_forward_reply(request_id, data)

    def _on_chunk(self, peer: NodeId, frame: list[Any], restricted: bool) -> None:
        self._on_snapshot_chunk(peer, frame)

    def _on_layer_frame(self, peer: NodeId, frame: list[Any], restricted: bool) -> None:
        """PEERS, PLACEMENT, REGIONS: checked here, served by a layer above."""
        kind = FrameKind(frame[0])
        if kind == FrameKind.PEERS:
            peers = check_peers(frame)
            if restricted:
                check_join_peers(peer, peers)
        elif kind == FrameKind.PLACEMENT:
            check_placement(frame)
        else:
            check_regions(frame)
        handler = self.handlers.get(kind)
        if handler is not None:
            handler(peer, frame)


_Route = Callable[[TcpTransport, NodeId, list[Any], bool], None]
_DISPATCH: dict[FrameKind, _Route] = {
    FrameKind.ENVELOPES: TcpTransport._on_envelopes,
    FrameKind.FORWARD: TcpTransport._on_forward,
    FrameKind.FORWARD_REPLY: TcpTransport._on_forward_reply,
    FrameKind.ENVELOPE_CHUNK: TcpTransport._on_chunk,
    FrameKind.PEERS: TcpTransport._on_layer_frame,
    FrameKind.PLACEMENT: TcpTransport._on_layer_frame,
    FrameKind.REGIONS: TcpTransport._on_layer_frame,
}
"""How each frame kind after the HELLO is checked and routed (HELLO, CHALLENGE and PROOF
are the handshake's: sent again, they are refused)."""
