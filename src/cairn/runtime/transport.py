"""The real peer transport: length-prefixed msgpack frames over TCP, one connection per pair.

Theory of operation. Of two peers, the one with the smaller node id dials and keeps
redialling with capped, jittered exponential backoff; the other only accepts. Both sides
open with a HELLO frame naming cluster and node, and a connection from a stranger (another
cluster, an unknown node, a bad protocol version) is closed. Once up, one connection carries
traffic both ways: region-tagged envelopes between region hosts (`ENVELOPES`), batches of
Raft messages of a lone group, and forwarded client commands (naming the region and
epoch the sender routed by).

`send` never blocks: messages are queued per peer and flushed once per event-loop turn as a
single frame (batching). Raft tolerates loss, so messages for a peer that is down, or
whose socket buffer is over `max_pending_bytes`, are dropped and counted, never queued
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from cairn.raft.types import Message, NodeId
from cairn.raft.wire import WireFormatError, decode_message, encode_message
from cairn.runtime.env import MessageHandler
from cairn.runtime.frames import (
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    FrameKind,
    Hello,
    encode_frame,
    parse_hello,
)

log = logging.getLogger("cairn.transport")

Address = tuple[str, int]
ForwardTarget = tuple[int, int, int]
"""(region id, epoch version, epoch conf_ver) a forwarded command was routed to."""
ForwardHandler = Callable[[NodeId, int, int, list[bytes], ForwardTarget | None], None]
"""(from node, request id, protocol, args, target or None): run a command a peer forwarded."""
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


class PeerConnection(asyncio.Protocol):
    """One TCP connection to a peer; decodes frames and hands them to the transport."""

    def __init__(self, owner: TcpTransport, expected: NodeId | None) -> None:
        self.owner = owner
        self.expected = expected
        self.peer: NodeId | None = None
        self.decoder = FrameDecoder(owner.config.max_frame)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        owner = self.owner
        cfg = owner.config
        hello = [FrameKind.HELLO, PROTOCOL_VERSION, cfg.cluster_id, owner.node_id, cfg.client_addr]
        self.transport.write(encode_frame(hello))

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        try:
            for frame in self.decoder.frames():
                self._on_frame(frame)
        except (FrameError, WireFormatError) as exc:
            log.warning("closing connection to peer %s: %s", self.peer, exc)
            self.close()

    def _on_frame(self, frame: list[Any]) -> None:
        if self.peer is None:
            self._on_hello(parse_hello(frame))
            return
        self.owner.stats.frames_received += 1
        self.owner.dispatch(self.peer, frame)

    def _on_hello(self, hello: Hello) -> None:
        problem = self.owner.vet_hello(hello, self.expected)
        if problem:
            self.owner.stats.rejected_peers += 1
            raise FrameError(problem)
        self.peer = hello.node_id
        if hello.client_addr:
            self.owner.client_addrs[hello.node_id] = hello.client_addr
        self.owner.attach(hello.node_id, self)

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
        if self.peer is not None:
            self.owner.detach(self.peer, self)
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass(slots=True)
class _PartialSnapshot:
    stream: int
    message: Any
    """The decoded `Message` (SNAPSHOT_CHUNK) or the encoded envelope (ENVELOPE_CHUNK)."""
    pieces: list[bytes] = field(default_factory=list)
    next_seq: int = 0


@dataclass(slots=True)
class _Outbox:
    raft: list[Message] = field(default_factory=list)
    other: list[bytes] = field(default_factory=list)


class TcpTransport:
    """The `Transport` of a real node, plus command forwarding between peers."""

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
        self._handler: MessageHandler | None = None
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

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for peers and start dialling those with larger ids."""
        loop = asyncio.get_running_loop()
        self._running = True
        self._server = await loop.create_server(
            lambda: PeerConnection(self, None), self.listen[0], self.listen[1], reuse_address=True
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
        for task in self._dialers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._dialers.clear()
        for conn in list(self._conns.values()):
            conn.close()
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
        while self._running and peer in self.peers:
            host, port = self.peers[peer]
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: PeerConnection(self, peer), host, port),
                    self.config.connect_timeout,
                )
            except (TimeoutError, OSError):
                await asyncio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            backoff = self.config.backoff_initial
            await conn.closed
            await asyncio.sleep(self.config.backoff_initial * self.rng.random())

    # -- connections ------------------------------------------------------------------

    def vet_hello(self, hello: Hello, expected: NodeId | None) -> str:
        """Why a peer's handshake is refused ("" if it is accepted)."""
        if hello.version != PROTOCOL_VERSION:
            return f"peer speaks protocol {hello.version}, we speak {PROTOCOL_VERSION}"
        if hello.cluster_id != self.config.cluster_id:
            return f"peer belongs to cluster {hello.cluster_id!r}"
        if expected is not None and hello.node_id != expected:
            return f"dialled node {expected} but node {hello.node_id} answered"
        if hello.node_id == self.node_id:
            return "peer claims our own node id"
        return ""

    def attach(self, peer: NodeId, conn: PeerConnection) -> None:
        """Use `conn` for `peer` from now on (a newer connection replaces an older one)."""
        old = self._conns.get(peer)
        self._conns[peer] = conn
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

    def set_handler(self, handler: MessageHandler) -> None:
        """See `Transport.set_handler`."""
        self._handler = handler

    def send(self, to: NodeId, msgs: Sequence[Message]) -> None:
        """See `Transport.send`: written now, as one frame (with any frames queued before).

        The driver hands over a whole Ready's messages for a peer in one call, so this is
        already one frame per peer per Ready. Writing at once, rather than at the end of
        the loop turn, matters for latency: a leader sends its appends and then fsyncs
        its own log, and the followers' fsyncs should run during the leader's, not after.
        """
        if to not in self._conns:
            self.stats.messages_dropped += len(msgs)
            return
        box = self._outbox.pop(to, None) or _Outbox()
        for m in msgs:
            snap = m.snapshot
            if snap is not None and len(snap.data) > self.config.snapshot_chunk:
                box.other.extend(self._snapshot_frames(m))
            else:
                box.raft.append(m)
        self._flush_box(to, box)

    def _snapshot_frames(self, m: Message) -> list[bytes]:
        """A large snapshot as a stream of chunk frames (the first carries the message)."""
        assert m.snapshot is not None
        data = m.snapshot.data
        size = self.config.snapshot_chunk
        self._next_stream += 1
        head = encode_message(replace(m, snapshot=replace(m.snapshot, data=b"")))
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        return [
            encode_frame(
                [
                    FrameKind.SNAPSHOT_CHUNK,
                    self._next_stream,
                    seq,
                    seq == len(pieces) - 1,
                    head if seq == 0 else None,
                    piece,
                ]
            )
            for seq, piece in enumerate(pieces)
        ]

    def send_frame(self, to: NodeId, payload: list[Any]) -> bool:
        """Queue a non-Raft frame (forwarding); false if the peer is not connected."""
        if to not in self._conns:
            return False
        self._outbox.setdefault(to, _Outbox()).other.append(encode_frame(payload))
        self._schedule_flush()
        return True

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
            self.stats.messages_dropped += len(box.raft)
            return
        data = b"".join(box.other)
        if box.raft:
            data += encode_frame([FrameKind.RAFT, [encode_message(m) for m in box.raft]])
        if conn.write(data):
            self.stats.frames_sent += len(box.other) + (1 if box.raft else 0)
        else:
            self.stats.messages_dropped += len(box.raft)

    # -- receiving ----------------------------------------------------------------------

    def _on_snapshot_chunk(self, peer: NodeId, frame: list[Any]) -> None:
        """Reassemble a chunked snapshot (of a Raft message or of an envelope); a gap (a
        dropped chunk) abandons the stream and Raft sends the snapshot again later."""
        kind, stream, seq, last, head, piece = frame
        key = (peer, int(kind))
        partial = self._incoming.get(key)
        if seq == 0:
            first = decode_message(head) if kind == FrameKind.SNAPSHOT_CHUNK else head
            partial = _PartialSnapshot(stream, first)
            self._incoming[key] = partial
        elif partial is None or partial.stream != stream or partial.next_seq != seq:
            self._incoming.pop(key, None)
            return
        partial.pieces.append(bytes(piece))
        partial.next_seq += 1
        if len(partial.pieces) * self.config.snapshot_chunk > self.config.max_snapshot:
            self._incoming.pop(key, None)
            raise FrameError("snapshot stream exceeds max_snapshot")
        if last:
            del self._incoming[key]
            data = b"".join(partial.pieces)
            if kind == FrameKind.ENVELOPE_CHUNK:
                if self.on_chunked_envelope is not None:
                    self.on_chunked_envelope(peer, partial.message, data)
                return
            m = partial.message
            assert m.snapshot is not None
            full = replace(m, snapshot=replace(m.snapshot, data=data))
            if self._handler is not None:
                self._handler([full])

    def dispatch(self, peer: NodeId, frame: list[Any]) -> None:
        """Route one frame from `peer` to its handler."""
        kind = frame[0]
        if kind == FrameKind.RAFT and len(frame) == 2:
            msgs = [decode_message(m) for m in frame[1]]
            if self._handler is not None and msgs:
                self._handler(msgs)
        elif kind == FrameKind.ENVELOPES and len(frame) == 2:
            if self.on_envelopes is not None:
                self.on_envelopes(peer, frame[1])
        elif kind == FrameKind.FORWARD and len(frame) in (4, 7):
            if self.on_forward is not None:
                request_id, protocol, args = frame[1:4]
                target = None
                if len(frame) == 7:
                    target = (int(frame[4]), int(frame[5]), int(frame[6]))
                argv = [bytes(a) for a in args]
                self.on_forward(peer, int(request_id), int(protocol), argv, target)
        elif kind == FrameKind.FORWARD_REPLY and len(frame) == 3:
            if self.on_forward_reply is not None:
                self.on_forward_reply(int(frame[1]), bytes(frame[2]))
        elif kind in (FrameKind.SNAPSHOT_CHUNK, FrameKind.ENVELOPE_CHUNK) and len(frame) == 6:
            self._on_snapshot_chunk(peer, frame)
        elif kind in self.handlers:
            self.handlers[kind](peer, frame)
        else:
            raise FrameError(f"unexpected frame kind {kind!r}")
