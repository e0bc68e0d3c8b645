"""Envelopes on the wire, and the region host's `HostTransport` over the peer TCP links.

An `Envelope` travels as a positional msgpack list::

    [kind, region, from peer, from node, to peer, to node, version, conf_ver,
     start, end, message or None, term, commit]

with the Raft message in `cairn.raft.wire`'s form. All envelopes a host sends to one node
in one drain go in ONE `ENVELOPES` frame, written at once (a leader's appends travel
while it fsyncs). An envelope whose message carries a snapshot larger than the
transport's chunk size travels as an `ENVELOPE_CHUNK` stream instead, its head being the
envelope without the snapshot's data.

The placement group's region (`PLACEMENT_REGION_ID`) travels in the same frames; its
envelopes are handed to the member's placement host (`placement_handler`), never to the
node's region host.

Anything malformed raises `FrameError`, which closes the connection it came on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cairn.meta.region import PLACEMENT_REGION_ID, Peer, RegionEpoch
from cairn.raft.types import NodeId
from cairn.raft.wire import WireFormatError, decode_message, encode_message
from cairn.runtime.frame_checks import check_entries
from cairn.runtime.frames import FrameError, FrameKind, encode_frame
from cairn.runtime.transport import TcpTransport
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import EnvelopeHandler

_KINDS = list(EnvelopeKind)
_CODES = {kind: i for i, kind in enumerate(_KINDS)}


def encode_envelope(env: Envelope) -> list[Any]:
    """An envelope as a positional list."""
    msg = encode_message(env.message) if env.message is not None else None
    return [
        _CODES[env.kind],
        env.region_id,
        env.from_peer.id,
        env.from_peer.node_id,
        env.to_peer.id,
        env.to_peer.node_id,
        env.epoch.version,
        env.epoch.conf_ver,
        env.start,
        env.end,
        msg,
        env.term,
        env.commit,
    ]


def decode_envelope(obj: Any) -> Envelope:
    """The inverse of `encode_envelope`; `FrameError` on anything malformed."""
    try:
        kind, region, fp, fn, tp, tn, version, conf_ver, start, end, msg, term, commit = obj
        ints = (kind, region, fp, fn, tp, tn, version, conf_ver, term, commit)
        if not all(type(i) is int for i in ints) or not 0 <= kind < len(_KINDS):
            raise FrameError("an envelope field is not an integer in range")
        if not isinstance(start, bytes) or not isinstance(end, bytes):
            raise FrameError("an envelope's range bounds are not bytes")
        message = decode_message(msg) if msg is not None else None
        if message is not None:
            check_entries(message, region=region != PLACEMENT_REGION_ID)
        return Envelope(
            _KINDS[kind],
            region,
            Peer(fp, fn),
            Peer(tp, tn),
            RegionEpoch(version, conf_ver),
            start,
            end,
            message,
            term,
            commit,
        )
    except (TypeError, ValueError, WireFormatError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"malformed envelope: {exc}") from exc


class TcpHostTransport:
    """`HostTransport` over a `TcpTransport` (see the module docstring)."""

    def __init__(self, transport: TcpTransport) -> None:
        self.transport = transport
        self._handler: EnvelopeHandler | None = None
        self.placement_handler: EnvelopeHandler | None = None
        """Receives the envelopes of the placement group's region (a member's placement
        host, `cairn.runtime.placement_host`); without one they are dropped: they are
        never the node's region host's."""
        self.sent = 0
        self.dropped = 0
        transport.on_envelopes = self._on_frame
        transport.on_chunked_envelope = self._on_chunked

    def send(self, to: NodeId, envelopes: Sequence[Envelope]) -> None:
        """See `HostTransport.send`: one frame (plus chunk streams), written at once."""
        if not self.transport.connected(to):
            self.dropped += len(envelopes)
            return
        limit = self.transport.config.snapshot_chunk
        plain: list[Any] = []
        frames: list[bytes] = []
        for env in envelopes:
            snap = env.message.snapshot if env.message is not None else None
            if snap is not None and len(snap.data) > limit:
                assert env.message is not None
                bare = replace(env.message, snapshot=replace(snap, data=b""))
                head = encode_envelope(replace(env, message=bare))
                frames.extend(self.transport.chunk_frames(head, snap.data))
            else:
                plain.append(encode_envelope(env))
        if plain:
            frames.insert(0, encode_frame([FrameKind.ENVELOPES, plain]))
        if self.transport.send_frames_now(to, frames):
            self.sent += len(envelopes)
        else:
            self.dropped += len(envelopes)

    def set_handler(self, handler: EnvelopeHandler | None) -> None:
        """See `HostTransport.set_handler`."""
        self._handler = handler

    def _on_frame(self, peer: NodeId, items: list[Any]) -> None:
        if not isinstance(items, list):
            raise FrameError("an ENVELOPES frame must hold a list")
        envelopes = [decode_envelope(item) for item in items]
        self._deliver(peer, envelopes)

    def _on_chunked(self, peer: NodeId, head: Any, data: bytes) -> None:
        env = decode_envelope(head)
        snap = env.message.snapshot if env.message is not None else None
        if env.message is None or snap is None:
            raise FrameError("a chunked envelope must carry a snapshot")
        full = replace(env, message=replace(env.message, snapshot=replace(snap, data=data)))
        self._deliver(peer, [full])

    def _deliver(self, peer: NodeId, envelopes: list[Envelope]) -> None:
        placement = False
        for env in envelopes:
            if env.from_peer.node_id != peer:
                raise FrameError(f"node {peer} sent an envelope in another node's name")
            placement = placement or env.region_id == PLACEMENT_REGION_ID
        if placement:
            mine = [e for e in envelopes if e.region_id == PLACEMENT_REGION_ID]
            envelopes = [e for e in envelopes if e.region_id != PLACEMENT_REGION_ID]
            if self.placement_handler is not None:
                self.placement_handler(mine)
        if self._handler is not None and envelopes:
            self._handler(envelopes)
