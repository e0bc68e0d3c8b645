"""Checks of every peer frame before anything uses it: kinds, field types and ranges.

Even an authenticated peer is checked (a bug, a version skew or a stolen secret must not
crash a node or poison its log): each function here takes a decoded frame (a msgpack
list) and returns its fields typed and range-checked, or raises `FrameError` (or the
wire decoders' `WireFormatError`), which closes the connection with one log line.

Entries inside appends are checked too (`check_entries`): an entry that reaches a log
is applied on every restart, so one the state machine cannot decode would stop the node
for good; it is refused at the edge instead, as the replica's apply path decodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from cairn.raft.types import EntryType, Message, NodeId, decode_conf_change
from cairn.runtime.frames import FrameError, FrameKind
from cairn.runtime.peer_auth import plausible_node_id
from cairn.shard.region_machine import ADMIN_TAG, conf_change_nodes, decode_region
from cairn.store.machine import decode_command
from cairn.store.merge_image import check_merge_image
from cairn.store.scope import Scope

U64 = 1 << 64
MAX_FORWARD_ARGS = 1 << 20
"""The most arguments a forwarded command may carry (the client limit's default)."""
MAX_BATCH = 1 << 20
"""The most Raft messages or envelopes in one frame."""
MAX_BOOK = 4096
"""The most address-book entries in one PEERS frame."""
MAX_MEMBERS = 64
MAX_HOST = 255
MAX_REGIONS = 1 << 16
MAX_ACL_USERS = 1 << 16
"""The most users in one ACL_USERS frame."""
MAX_ACL_NAME = 1024
MAX_ACL_RULES = 1 << 20
"""The longest user name and rule string an ACL_USERS or FORWARD frame may carry."""
FORWARD_PROTOCOLS = (2, 3)
"""The RESP versions a forwarded command's reply may be encoded in."""


def uint(value: Any, name: str) -> int:
    """`value` if it is an int in [0, 2**64), else `FrameError` naming `name`."""
    if type(value) is not int or not 0 <= value < U64:
        raise FrameError(f"{name} is not an unsigned 64-bit integer")
    return value


def _list(value: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise FrameError(f"{name} is not a list")
    if len(value) > limit:
        raise FrameError(f"{name} has {len(value)} items, over the limit of {limit}")
    return value


def _arity(frame: list[Any], kind: FrameKind, lengths: tuple[int, ...]) -> None:
    if len(frame) not in lengths:
        raise FrameError(f"a {kind.name} frame has {len(frame)} fields")


@dataclass(frozen=True, slots=True)
class ForwardFrame:
    """A command another node forwarded for this node to run."""

    request_id: int
    protocol: int
    argv: list[bytes]
    target: tuple[int, int, int] | None
    """(region id, epoch version, epoch conf_ver) the sender routed by; None: route here."""
    user: str = "default"
    """The ACL user the command runs as (`default` from a sender that does not say)."""


def check_forward(frame: list[Any], max_args: int = MAX_FORWARD_ARGS) -> ForwardFrame:
    """A FORWARD frame's fields, checked."""
    _arity(frame, FrameKind.FORWARD, (4, 7, 8))
    request_id = uint(frame[1], "a FORWARD's request id")
    protocol = frame[2]
    if type(protocol) is not int or protocol not in FORWARD_PROTOCOLS:
        raise FrameError(f"a FORWARD's protocol must be 2 or 3, not {protocol!r:.20}")
    argv = _list(frame[3], "a FORWARD's argv", max_args)
    if not argv or not all(isinstance(a, bytes) for a in argv):
        raise FrameError("a FORWARD's argv must be a non-empty list of bytes")
    target = None
    if len(frame) >= 7:
        region, version, conf_ver = (uint(x, "a FORWARD's region or epoch") for x in frame[4:7])
        target = (region, version, conf_ver)
    user = "default"
    if len(frame) == 8:
        user = _short_text(frame[7], "a FORWARD's user", MAX_ACL_NAME)
    return ForwardFrame(request_id, protocol, argv, target, user)


def _short_text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise FrameError(f"{name} is not a string")
    if len(value) > limit:
        raise FrameError(f"{name} is longer than {limit} characters")
    return value


def check_acl_users(frame: list[Any]) -> tuple[int, list[tuple[str, str]]]:
    """An ACL_USERS frame's (version, [(name, rules), ...]), checked (the rules are
    parsed by the node, which skips what it does not understand)."""
    _arity(frame, FrameKind.ACL_USERS, (3,))
    version = uint(frame[1], "an ACL_USERS version")
    users = []
    for item in _list(frame[2], "an ACL_USERS table", MAX_ACL_USERS):
        if not isinstance(item, list) or len(item) != 2:
            raise FrameError("an ACL user is [name, rules]")
        name = _short_text(item[0], "an ACL user's name", MAX_ACL_NAME)
        users.append((name, _short_text(item[1], "an ACL user's rules", MAX_ACL_RULES)))
    return version, users


MAX_FUNCTION_LIBRARIES = 10_000
"""The most libraries in one FUNCTIONS frame (`cairn.store.scripting.functions`)."""


def check_functions(frame: list[Any]) -> tuple[int, list[tuple[str, bytes]]]:
    """A FUNCTIONS frame's (version, [(name, code), ...]), checked (each library's code is
    parsed again by the node, which skips what does not load)."""
    _arity(frame, FrameKind.FUNCTIONS, (3,))
    version = uint(frame[1], "a FUNCTIONS version")
    libraries = []
    for item in _list(frame[2], "a FUNCTIONS table", MAX_FUNCTION_LIBRARIES):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bytes):
            raise FrameError("a library is [name, code]")
        libraries.append((_short_text(item[0], "a library's name", MAX_ACL_NAME), item[1]))
    return version, libraries


def check_forward_reply(frame: list[Any]) -> tuple[int, bytes]:
    """A FORWARD_REPLY's (request id, encoded reply)."""
    _arity(frame, FrameKind.FORWARD_REPLY, (3,))
    if not isinstance(frame[2], bytes):
        raise FrameError("a FORWARD_REPLY's reply must be bytes")
    return uint(frame[1], "a FORWARD_REPLY's request id"), frame[2]


def check_envelopes(frame: list[Any]) -> list[Any]:
    """An ENVELOPES frame's encoded envelopes (each is decoded by `envelope_codec`)."""
    _arity(frame, FrameKind.ENVELOPES, (2,))
    return _list(frame[1], "an ENVELOPES frame's batch", MAX_BATCH)


@dataclass(frozen=True, slots=True)
class ChunkFrame:
    """One piece of a chunked snapshot envelope (ENVELOPE_CHUNK)."""

    kind: FrameKind
    stream: int
    seq: int
    last: bool
    head: Any
    """The encoded envelope (first piece only; checked by its decoder)."""
    piece: bytes


def check_chunk(frame: list[Any]) -> ChunkFrame:
    """A chunk frame's fields, checked."""
    kind = FrameKind(frame[0])
    _arity(frame, kind, (6,))
    _, stream, seq, last, head, piece = frame
    if not isinstance(last, bool) or not isinstance(piece, bytes):
        raise FrameError(f"a {kind.name} frame's flag or piece is mistyped")
    seq = uint(seq, "a chunk's sequence number")
    if (seq == 0) != (head is not None):
        raise FrameError("only the first chunk of a stream carries its head")
    return ChunkFrame(kind, uint(stream, "a chunk's stream id"), seq, last, head, piece)


@dataclass(frozen=True, slots=True)
class PeersFrame:
    """A PEERS frame: addresses a node knows, and the placement group's members."""

    book: list[tuple[NodeId, str, int]]
    want_reply: bool
    members: list[NodeId]


def check_peers(frame: list[Any]) -> PeersFrame:
    """A PEERS frame's fields: node ids bounded, every address one that parses."""
    _arity(frame, FrameKind.PEERS, (4,))
    _, entries, want_reply, members = frame
    if not isinstance(want_reply, bool):
        raise FrameError("a PEERS frame's want_reply must be a boolean")
    book = [_book_entry(e) for e in _list(entries, "a PEERS frame's book", MAX_BOOK)]
    ids = _list(members, "a PEERS frame's members", MAX_MEMBERS)
    if not all(plausible_node_id(m) for m in ids):
        raise FrameError("a PEERS frame names an impossible member id")
    return PeersFrame(book, want_reply, ids)


def _book_entry(entry: Any) -> tuple[NodeId, str, int]:
    if not isinstance(entry, list) or len(entry) != 3:
        raise FrameError("a PEERS entry is [node id, host, port]")
    node, host, port = entry
    if not plausible_node_id(node):
        raise FrameError(f"a PEERS entry names an impossible node id {node!r:.20}")
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST or not host.isprintable():
        raise FrameError("a PEERS entry's host is not a host name")
    if any(c.isspace() or c in "/@" for c in host):
        raise FrameError("a PEERS entry's host is not a host name")
    if type(port) is not int or not 0 < port < 65536:
        raise FrameError("a PEERS entry's port is not a port")
    return node, host, port


def check_join_peers(peer: NodeId, frame: PeersFrame) -> None:
    """What a node this one does not know may send: an announcement of itself only."""
    if frame.members or any(node != peer for node, _, _ in frame.book):
        raise FrameError(f"node {peer} is no member here: it may only announce itself")


def check_placement(frame: list[Any]) -> bytes:
    """A PLACEMENT frame's encoded message (decoded by `cairn.placement.service`)."""
    _arity(frame, FrameKind.PLACEMENT, (2,))
    if not isinstance(frame[1], bytes):
        raise FrameError("a PLACEMENT frame carries bytes")
    return frame[1]


def check_regions(frame: list[Any]) -> list[Any]:
    """A REGIONS frame's items, each [region fields, leader node or None]."""
    _arity(frame, FrameKind.REGIONS, (2,))
    items = _list(frame[1], "a REGIONS frame's map", MAX_REGIONS)
    for item in items:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], list):
            raise FrameError("a REGIONS item is [region, leader]")
        if item[1] is not None and not plausible_node_id(item[1]):
            raise FrameError("a REGIONS item names an impossible leader")
    return items


def check_entries(m: Message, *, region: bool) -> None:
    """Refuse entries the replica's apply would fail on (see the module docstring).

    `region`: the message is a data region's (its normal entries carry store or admin
    commands); else the placement group's region's (its commands are decoded leniently
    there, and none may look like a region's admin command)."""
    for entry in m.entries:
        try:
            if entry.type is EntryType.CONF_CHANGE:
                _check_conf_change(entry.data)
            elif entry.data:
                _check_request(entry.data, region)
        except FrameError:
            raise
        except Exception as exc:  # the decoders raise several unrelated types
            name = type(exc).__name__
            raise FrameError(f"entry {entry.index} cannot be applied ({name})") from None


def _request(data: bytes) -> bytes:
    """The command inside a normal entry's data (`cairn.shard.replica.encode_request`)."""
    decoded = msgpack.unpackb(data, raw=False)
    if not isinstance(decoded, list) or len(decoded) != 2:
        raise FrameError("an entry's data is not [request id, command]")
    if not all(isinstance(x, bytes) for x in decoded):
        raise FrameError("an entry's request id or command is not bytes")
    command: bytes = decoded[1]
    return command


def _check_request(data: bytes, region: bool) -> None:
    command = _request(data)
    if not region:
        if command[:1] == ADMIN_TAG:
            raise FrameError("the placement group's log holds no region admin command")
        return
    if command[:1] == ADMIN_TAG:
        check_admin_command(msgpack.unpackb(command[1:]))
    else:
        decode_command(command)


ADMIN_ARGS = {"split": 3, "prepare_merge": 1, "commit_merge": 2}
"""The arguments (after kind, version, conf_ver) of each admin command of a region's log."""


def check_admin_command(body: Any) -> None:
    """Refuse an admin command (`cairn.shard.region_machine`'s split, prepare-merge,
    commit-merge) whose shape `RegionMachine.apply` would fail on."""
    if not isinstance(body, list) or len(body) < 3 or body[0] not in ADMIN_ARGS:
        raise FrameError("an admin entry is [kind, version, conf_ver, ...] of a known kind")
    kind, version, conf_ver, *args = body
    if len(args) != ADMIN_ARGS[kind]:
        raise FrameError(f"a {kind} entry has {len(args)} arguments")
    uint(version, "an admin entry's version")
    uint(conf_ver, "an admin entry's conf_ver")
    if kind == "split":
        split_key, new_id, peer_ids = args
        if not isinstance(split_key, bytes):
            raise FrameError("a split key is bytes")
        uint(new_id, "a split's new region id")
        for peer_id in _list(peer_ids, "a split's peer ids", MAX_MEMBERS):
            uint(peer_id, "a split's peer id")
    elif kind == "prepare_merge":
        uint(args[0], "a merge's target region id")
    else:
        fields, data = args
        if not isinstance(data, bytes):
            raise FrameError("a commit-merge's data is bytes")
        try:
            source = decode_region(fields)
        except ValueError as exc:
            raise FrameError(f"a commit-merge's source region: {exc}") from None
        try:  # what its replica installs and merges (`cairn.store.merge_image`)
            check_merge_image(Scope.region(source.id, source.start, source.end), data)
        except ValueError as exc:
            raise FrameError(f"a commit-merge's image: {exc}") from None


def _check_conf_change(data: bytes) -> None:
    cc = decode_conf_change(data)
    if not isinstance(cc.context, bytes):
        raise FrameError("a conf change's context is not bytes")
    for change in cc.changes:
        uint(change.node_id, "a conf change's node id")
    if cc.context:  # every hosted region's, the placement group's too
        _request(cc.context)
        conf_change_nodes(cc.context)  # what `RegionPeer._on_conf_change` decodes


MAX_ADMIN_VIEW = 32
"""The longest view name an ADMIN frame may carry."""
MAX_ADMIN_ARGS = 4
MAX_ADMIN_ARG = 64 << 10
"""The longest text argument of an ADMIN frame (a placement rules document fits)."""
MAX_ADMIN_REPLY = 16 << 20
"""The largest body an ADMIN_REPLY may carry."""


@dataclass(frozen=True, slots=True)
class AdminFrame:
    """A read (or action) of this node's admin API another node asks for its caller."""

    request_id: int
    view: str
    args: list[int | str]


def check_admin(frame: list[Any]) -> AdminFrame:
    """An ADMIN frame's fields: a short view name, a few integer or bounded text args."""
    _arity(frame, FrameKind.ADMIN, (4,))
    request_id = uint(frame[1], "an ADMIN frame's request id")
    view = frame[2]
    if not isinstance(view, str) or not 0 < len(view) <= MAX_ADMIN_VIEW:
        raise FrameError("an ADMIN frame's view is not a short name")
    args = _list(frame[3], "an ADMIN frame's args", MAX_ADMIN_ARGS)
    for arg in args:
        if isinstance(arg, str):
            if len(arg) > MAX_ADMIN_ARG:
                raise FrameError("an ADMIN frame's argument is too long")
        else:
            uint(arg, "an ADMIN frame's argument")
    return AdminFrame(request_id, view, args)


def check_admin_reply(frame: list[Any]) -> tuple[int, int, bytes]:
    """An ADMIN_REPLY's (request id, HTTP status, JSON body)."""
    _arity(frame, FrameKind.ADMIN_REPLY, (4,))
    request_id = uint(frame[1], "an ADMIN_REPLY's request id")
    status, body = frame[2], frame[3]
    if type(status) is not int or not 200 <= status <= 599:
        raise FrameError("an ADMIN_REPLY's status is not an HTTP status")
    if not isinstance(body, bytes) or len(body) > MAX_ADMIN_REPLY:
        raise FrameError("an ADMIN_REPLY's body is not bytes of a bounded size")
    return request_id, status, body
