"""Peer frames: a 4-byte big-endian length, then one msgpack value (sans-I/O).

Every frame is a list whose first element is its kind. The decoder never trusts a
declared length beyond `max_frame`, so a confused or hostile peer costs at most that
much memory before its connection is closed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

_LEN = struct.Struct(">I")
PROTOCOL_VERSION = 2
"""2: the authenticated handshake (`cairn.runtime.peer_auth`) precedes HELLO."""


class FrameKind(enum.IntEnum):
    """What a frame carries."""

    HELLO = 0
    """[kind, version, cluster_id, node_id, client_addr]: the first frame each side sends
    once the handshake (CHALLENGE, PROOF) has authenticated the other."""
    # 1 was RAFT ([kind, [message, ...]]: the standalone placement replica's Raft
    # messages) and 4 SNAPSHOT_CHUNK (its large snapshots in pieces). Retired: the
    # placement group travels in ENVELOPES and ENVELOPE_CHUNK like every region. Never
    # reuse 1 or 4: a node of an older version still sends them (`RETIRED_KINDS`).
    FORWARD = 2
    """[kind, request_id, protocol, [arg, ...], region, version, conf_ver, user]: a client
    command for the leader to run, routed to that region at that epoch, for ACL user
    `user` (the leader checks the user's permissions again). Older senders omit `user`
    (the leader then checks the `default` user), or all four fields (route here)."""
    FORWARD_REPLY = 3
    """[kind, request_id, reply_bytes]: the encoded reply to a forwarded command."""
    ENVELOPES = 5
    """[kind, [envelope, ...]]: region-tagged messages between region hosts
    (see `cairn.runtime.envelope_codec`)."""
    ENVELOPE_CHUNK = 6
    """[kind, stream_id, seq, last, envelope_or_None, chunk]: one piece of a
    snapshot-carrying envelope too large for one frame (the first piece carries the
    envelope without its snapshot's data)."""
    PLACEMENT = 7
    """[kind, message]: a placement request or reply, as `cairn.placement.service`'s
    `encode_message` writes it (see `cairn.runtime.placement_wiring`)."""
    PEERS = 8
    """[kind, [[node_id, host, port], ...], want_reply, [member, ...]]: peer addresses a
    node knows, and the placement group's members (see `cairn.runtime.placement_wiring`)."""
    REGIONS = 9
    """[kind, [[region, leader node or None], ...]]: the placement leader's region map."""
    CHALLENGE = 10
    """[kind, version, nonce]: the handshake's opening, both ways (`cairn.runtime.peer_auth`)."""
    PROOF = 11
    """[kind, sender id, receiver id, mac]: a side's proof that it knows the cluster secret."""
    PUBLISH = 12
    """[kind, channel, message]: a message PUBLISHed on the sending node, for this node's
    subscribers (see `cairn.runtime.pubsub`)."""
    ACL_USERS = 13
    """[kind, version, [[name, rules], ...]]: the cluster's ACL users as the placement
    leader holds them (see `cairn.runtime.acl_commands`)."""
    ADMIN = 14
    """[kind, request_id, view, [arg, ...]]: a read of another node's admin API (a cluster
    view of the placement leader, a node's history; see `cairn.runtime.admin_peer`)."""
    ADMIN_REPLY = 15
    """[kind, request_id, http_status, json_body]: the answer to an ADMIN frame."""
    FUNCTIONS = 16
    """[kind, version, [[name, code], ...]]: the cluster's FUNCTION libraries as the
    placement leader holds them (see `cairn.store.scripting.functions`)."""


RETIRED_KINDS = {1: "RAFT", 4: "SNAPSHOT_CHUNK"}
"""Frame kinds of older versions (the standalone placement replica's): dropped on arrival,
with one warning per connection, so the regions' traffic on that link goes on."""


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame."""


@dataclass(frozen=True, slots=True)
class Hello:
    """The handshake: which cluster and node the other side is, and the address its
    clients use (so every node can name every other in MOVED and CLUSTER SLOTS)."""

    version: int
    cluster_id: str
    node_id: int
    client_addr: str = ""


def encode_frame(payload: list[Any]) -> bytes:
    """One frame's bytes."""
    body: bytes = msgpack.packb(payload, use_bin_type=True)
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Feed bytes, take out whole frames (each a decoded msgpack list).

    `max_frame` may change between two frames: a peer connection accepts only tiny
    frames until the handshake has authenticated the other side (`next_frame` takes
    one frame at a time so that the limit applies from the frame after).
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken out as frames."""
        return len(self._buf) - self._pos

    def next_frame(self) -> list[Any] | None:
        """The next complete frame, or None until more bytes arrive."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _LEN.size:
            return None
        (length,) = _LEN.unpack_from(buf, pos)
        if length > self.max_frame:
            raise FrameError(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
        end = pos + _LEN.size + length
        if len(buf) < end:
            return None
        try:
            payload = msgpack.unpackb(bytes(buf[pos + _LEN.size : end]), raw=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise FrameError(f"undecodable frame: {type(exc).__name__}") from None
        if not isinstance(payload, list) or not payload:
            raise FrameError("a frame must be a non-empty list")
        self._pos = end
        return payload

    def frames(self) -> list[list[Any]]:
        """Every complete frame received so far, in order."""
        out: list[list[Any]] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


def parse_hello(frame: list[Any]) -> Hello:
    """The handshake in `frame`, or `FrameError`."""
    if len(frame) not in (4, 5) or frame[0] != FrameKind.HELLO:
        raise FrameError("expected a HELLO frame first")
    _, version, cluster_id, node_id, *rest = frame
    client_addr = rest[0] if rest else ""
    if not isinstance(version, int) or not isinstance(cluster_id, str):
        raise FrameError("malformed HELLO frame")
    if not isinstance(node_id, int) or not isinstance(client_addr, str):
        raise FrameError("malformed HELLO frame")
    return Hello(version, cluster_id, node_id, client_addr)
