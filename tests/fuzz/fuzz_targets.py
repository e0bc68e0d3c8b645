"""The fuzz targets: each `TestOneInput(data)` feeds hostile bytes to one decoder.

Every target asserts its decoder's contract: it returns a value or raises one of the
documented typed errors (`ALLOWED`), never another exception, and its work and memory stay
bounded (the RESP parser never holds more than its `max_buffer`). Anything else escapes
the target and libFuzzer (through atheris) reports it as a crash, with the input saved.

Targets are test tooling, not product code: they live under `tests/fuzz/` (linted, and
importable as top-level modules like the other test helpers). `fuzz_run.py` runs them
with atheris; `seeds(name)` gives each one valid inputs to start from, so coverage begins
where the interesting code is rather than at "not msgpack".

The targets follow the product's own paths: `frame` does what a `PeerConnection` does
with received bytes (the first frame goes to an acceptor's handshake under the
pre-authentication frame limit, the rest are dispatched as an authenticated peer's, with
the checks of `frame_checks` and the handlers' decoders, without sockets); `entry` does
what a follower does with a log entry it is sent (the edge check `check_entries`, then
`RegionMachine.apply` on a fresh in-memory store: an accepted entry must apply, with an
error reply at worst, since an exception there stops the region for good).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack

from cairn.admin.views import SchemaError, rules_from_json
from cairn.meta.region import Peer, Region, RegionEpoch, range_key
from cairn.placement.model import InvalidRulesError
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    encode_conf_change,
)
from cairn.raft.wire import WireFormatError, decode_message, encode_message
from cairn.resp.errors import RemoteProtocolError
from cairn.resp.parser import NEED_DATA, Limits, RequestParser
from cairn.resp.reply import ErrorReply
from cairn.runtime.config import ConfigError, load
from cairn.runtime.envelope_codec import decode_envelope, encode_envelope
from cairn.runtime.frame_checks import (
    check_acl_users,
    check_admin,
    check_admin_reply,
    check_chunk,
    check_entries,
    check_envelopes,
    check_forward,
    check_forward_reply,
    check_functions,
    check_join_peers,
    check_peers,
    check_placement,
    check_regions,
)
from cairn.runtime.frames import RETIRED_KINDS, FrameDecoder, FrameError, FrameKind, encode_frame
from cairn.runtime.peer_auth import HANDSHAKE_MAX_FRAME, Handshake, Role
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.region_machine import (
    RegionMachine,
    decode_region,
    encode_commit_merge,
    encode_prepare_merge,
    encode_region,
    encode_split,
)
from cairn.shard.replica import encode_request
from cairn.storage.errors import CorruptLogError
from cairn.storage.records import decode_entry, encode_entry
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.machine import encode_command

ALLOWED: dict[str, tuple[type[BaseException], ...]] = {
    "resp": (RemoteProtocolError,),
    "frame": (FrameError, WireFormatError),
    "envelope": (FrameError,),
    "raft": (WireFormatError, FrameError),
    "entry": (CorruptLogError, FrameError),
    "config": (ConfigError,),
    "admin_json": (SchemaError, InvalidRulesError),
}
"""The typed errors each target's decoder may raise (its documented contract)."""

# -- RESP ------------------------------------------------------------------------------

RESP_LIMITS = Limits(
    max_bulk_length=4096,
    max_array_length=64,
    max_inline_length=1024,
    max_buffer=16384,
    unauthenticated_max_array_length=10,
    unauthenticated_max_bulk_length=512,
)
"""The server's limits scaled down, so that inputs of a few KiB reach every one of them."""


def _resp_run(data: bytes, fast: bool, auth: bool, cut: int) -> tuple[list[list[bytes]], str]:
    """Every command a parser yields from `data` fed in pieces of `cut` bytes, and the
    error text that stopped it ("" if none); asserts the memory bound after each feed."""
    parser = RequestParser(RESP_LIMITS, fast=fast)
    parser.auth_required = auth
    out: list[list[bytes]] = []
    for start in range(0, len(data), cut):
        parser.feed(data[start : start + cut])
        assert parser.buffered <= RESP_LIMITS.max_buffer, "parser holds more than max_buffer"
        try:
            while (command := parser.next_command()) is not NEED_DATA:
                assert isinstance(command, list) and command, "empty command"
                assert all(type(a) is bytes for a in command), "argument is not bytes"
                out.append(command)
        except RemoteProtocolError as exc:
            return out, str(exc)
    return out, ""


def resp(data: bytes) -> None:
    """RESP requests: the fast and the reference paths agree, under the server's limits
    (scaled down), authenticated or not, whatever the TCP cuts."""
    if not data:
        return
    mode, body = data[0], data[1:]
    auth = bool(mode & 1)
    cut = 1 + (mode >> 1) % 64 if mode & 0x80 else max(1, len(body))
    fast = _resp_run(body, True, auth, cut)
    slow = _resp_run(body, False, auth, cut)
    assert fast == slow, f"fast and reference paths disagree: {fast!r} != {slow!r}"


# -- peer frames -----------------------------------------------------------------------

SECRET = b"fuzz-cluster-secret-0123456789"
ACCEPTOR_ID = 1
PEER_ID = 2


def dispatch_frame(frame: list[Any], restricted: bool) -> None:
    """What `TcpTransport.dispatch` and the layers' handlers do with one frame."""
    kind = frame[0]
    if type(kind) is int and kind in RETIRED_KINDS and not restricted:
        return  # an older node's: dropped
    if type(kind) is not int or kind not in FrameKind._value2member_map_:
        raise FrameError("unexpected frame kind")
    kind = FrameKind(kind)
    if restricted and kind != FrameKind.PEERS:
        raise FrameError("restricted")
    if kind == FrameKind.ENVELOPES:
        for item in check_envelopes(frame):
            decode_envelope(item)
    elif kind == FrameKind.FORWARD:
        check_forward(frame)
    elif kind == FrameKind.FORWARD_REPLY:
        check_forward_reply(frame)
    elif kind == FrameKind.ENVELOPE_CHUNK:
        _chunk(frame)
    elif kind == FrameKind.PEERS:
        peers = check_peers(frame)
        if restricted:
            check_join_peers(PEER_ID, peers)
    elif kind == FrameKind.PLACEMENT:
        _placement(check_placement(frame))
    elif kind == FrameKind.REGIONS:
        _regions(check_regions(frame))
    elif kind == FrameKind.PUBLISH:
        _publish(frame)
    elif kind == FrameKind.ACL_USERS:
        _acl_users(frame)
    elif kind == FrameKind.FUNCTIONS:
        _functions(frame)
    elif kind == FrameKind.ADMIN:
        check_admin(frame)
    elif kind == FrameKind.ADMIN_REPLY:
        check_admin_reply(frame)
    else:  # HELLO, CHALLENGE, PROOF after the handshake
        raise FrameError("handshake frame after the handshake")


def _chunk(frame: list[Any]) -> None:
    chunk = check_chunk(frame)
    if chunk.seq == 0:
        env = decode_envelope(chunk.head)
        if env.message is None or env.message.snapshot is None:
            raise FrameError("a chunked envelope must carry a snapshot")


def _placement(data: bytes) -> None:
    """`PlacementWiring._on_placement_frame`'s decoding."""
    from cairn.placement.codec import DecodeError
    from cairn.placement.service import decode_message as decode_placement

    try:
        decode_placement(data)
    except DecodeError as exc:
        raise FrameError(str(exc)) from exc


def _regions(items: list[Any]) -> None:
    """`PlacementWiring._adopt_layout`'s decoding."""
    try:
        for fields, leader in items:
            decode_region(fields)
            None if leader is None else int(leader)
    except (TypeError, ValueError, AssertionError) as exc:
        raise FrameError(str(exc)) from exc


def _publish(frame: list[Any]) -> None:
    """`PubSub._on_publish_frame`'s check."""
    valid = len(frame) == 3 or (len(frame) == 4 and frame[3] is True)
    if not valid or not all(isinstance(f, bytes) for f in frame[1:3]):
        raise FrameError("malformed PUBLISH frame")


@functools.cache
def _node_catalog() -> Any:
    """The ACL catalog a node builds from its whole command table (`Node.start`)."""
    from cairn.runtime.acl_commands import node_catalog
    from cairn.runtime.client_commands import CLIENT_COMMANDS
    from cairn.runtime.transactions import SERVED_COMMANDS
    from cairn.shard.pubsub import PUBSUB_COMMANDS
    from cairn.store import COMMANDS

    return node_catalog({**COMMANDS, **CLIENT_COMMANDS, **PUBSUB_COMMANDS, **SERVED_COMMANDS})


def _acl_users(frame: list[Any]) -> None:
    """`NodePlacement._on_acl_frame` and the node's `AclTable.adopt`: every user's rules
    parsed against the node's catalog (what it does not understand is skipped)."""
    from cairn.runtime.acl_commands import AclTable

    version, users = check_acl_users(frame)
    AclTable(_node_catalog(), None).adopt(version, users)


def _functions(frame: list[Any]) -> None:
    """`NodePlacement._on_functions_frame` and `Libraries.adopt`: each library's code
    loaded in the sandbox (a library that does not load is skipped)."""
    from cairn.store.scripting.functions import Libraries

    version, libraries = check_functions(frame)
    Libraries().adopt(version, libraries)


def frame(data: bytes) -> None:
    """Peer bytes as a `PeerConnection` takes them: the first frame under the
    pre-authentication limit to an acceptor's handshake, the rest as an authenticated
    peer's (a known one's when the first frame was a CHALLENGE, else a restricted one's)."""
    decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
    decoder.feed(data)
    first = decoder.next_frame()
    if first is None:
        return
    handshake = Handshake(
        Role.ACCEPTOR, SECRET, "dev", ACCEPTOR_ID, b"\x07" * 32, knows=lambda n: n == PEER_ID
    )
    with contextlib.suppress(FrameError):
        handshake.receive(first)
    decoder.max_frame = 1 << 20
    restricted = first[0] != FrameKind.CHALLENGE  # as a known peer, or as a joining one
    while (next_frame := decoder.next_frame()) is not None:
        dispatch_frame(next_frame, restricted)


# -- envelopes, raft messages ------------------------------------------------------------


def _unpacked(data: bytes) -> Any:
    """`data` as msgpack, or a marker the decoders refuse (as the frame decoder does)."""
    try:
        return msgpack.unpackb(data, raw=False)
    except Exception:
        return None


def envelope(data: bytes) -> None:
    """An encoded envelope (one item of an ENVELOPES frame) through `decode_envelope`."""
    obj = _unpacked(data)
    if obj is not None:
        decode_envelope(obj)


def raft(data: bytes) -> None:
    """A Raft message through `decode_message` and the entry checks of both log kinds."""
    obj = _unpacked(data)
    if obj is None:
        return
    message = decode_message(obj)
    check_entries(message, region=bool(len(data) & 1))


# -- log entries and their apply -----------------------------------------------------------

_PEERS = (Peer(11, 1), Peer(12, 2), Peer(13, 3))
_REGION = Region(1, b"", b"", RegionEpoch(1, 1), _PEERS)
_HALF = b"\x20\x00"
"""The range key of slot 8192: the `entry` target's region is either the whole keyspace
or its left half, whose right neighbour (region 2, `_SOURCE`) can merge into it."""
_LEFT = Region(1, b"", _HALF, RegionEpoch(1, 1), _PEERS)
_SOURCE = Region(2, _HALF, b"", RegionEpoch(3, 1), (Peer(21, 1), Peer(22, 2), Peer(23, 3)))


class _InMemoryStorage:
    """The node's `RegionStorage` (`LmdbHostStore`) over the target's in-memory keyspace:
    the same calls on the same machine, without LMDB's transaction. A commit-merge
    installs the source's image (`KeyspaceImages.restore`) and merges the two machines
    (`merge_machines`); a split carves the machine (`split_machine`); a description
    change records the applied index and the freeze. What the target checks is that an
    entry the edge accepted applies without an exception."""

    def store_split(self, inner: Any, index: int, left: Region, right: Region) -> None:
        """`LmdbHostStore.store_split`'s carve."""
        from cairn.storage.node_store import RAFT_INIT_INDEX
        from cairn.store.carve import split_machine

        split_machine(inner.store, right.start, right.id, index, RAFT_INIT_INDEX)

    def store_merge(
        self, inner: Any, index: int, source: Region, merged: Region, data: bytes
    ) -> None:
        """`LmdbHostStore.store_merge`'s image install and machine merge."""
        from cairn.store.carve import merge_machines
        from cairn.store.machine import StoreMachine
        from cairn.store.ranges import KeyspaceImages
        from cairn.store.scope import Scope

        keyspace = inner.store.keyspace
        scope = Scope.region(source.id, source.start, source.end)
        KeyspaceImages(keyspace).restore(scope, data)
        merge_machines(StoreMachine(keyspace, scope=scope), inner.store, index)

    def store_description(
        self, inner: Any, index: int, region: Region, merging_into: int | None
    ) -> None:
        """`LmdbHostStore.store_description`'s records."""
        from cairn.store.carve import freeze
        from cairn.store.keyspace import write_batch
        from cairn.store.layout import encode_u64

        machine = inner.store
        with write_batch(machine.keyspace) as batch:
            if merging_into is not None:
                freeze(batch, region.id, merging_into)
            batch.put(machine.scope.applied_key, encode_u64(index))
        machine.reload()

    def store_restore(
        self, inner: Any, region: Region, data: bytes, merging_into: int | None
    ) -> None:
        """Not reached: entries carry no snapshot."""
        raise AssertionError("an entry restored a snapshot")

    def stored_merge_target(self, inner: Any) -> int | None:
        """Never frozen at the start."""
        return None


def _fresh_region(region: Region) -> RegionMachine:
    from cairn.runtime.range_store import StoreRangeMachine

    inner = StoreRangeMachine(MemoryKeyspace(), region.id, region)
    return RegionMachine(
        inner, region, on_split=lambda left, right, image: None, storage=_InMemoryStorage()
    )


def entry(data: bytes) -> None:
    """A stored log record (`records.decode_entry`), and its data as a follower takes an
    entry: refused at the edge (`check_entries`) or applied without an exception, as the
    node applies it: a store command or an admin one (split, prepare-merge, commit-merge
    with its source's image, installed and merged) by a `RegionMachine` over the node's
    storage calls, a membership change by the host's decoding of its context.

    The first byte is the mode: bit 0 a stored record, bit 1 a conf change, bit 2 the
    region is the keyspace's left half (so a commit-merge from its right neighbour
    applies) instead of the whole keyspace, bit 3 an entry of the placement group's log
    (a batch of placement commands, applied by a `PlacementMachine`)."""
    if len(data) < 2:
        return
    mode, body = data[0], data[1:]
    if mode & 1:
        decode_entry(7, body)
        return
    etype = EntryType.CONF_CHANGE if mode & 2 else EntryType.NORMAL
    message = Message(
        MessageType.APP, to=11, frm=12, entries=(Entry(2, 7, etype, body),)
    )
    placement = bool(mode & 8)
    check_entries(message, region=not placement)
    if placement:
        if etype is EntryType.NORMAL:
            _apply_placement(body)
        return
    machine = _fresh_region(_LEFT if mode & 4 else _REGION)
    if etype is EntryType.CONF_CHANGE:
        _apply_conf_change(machine, body)
        return
    from cairn.shard.replica import decode_request

    _, command = decode_request(body)
    machine.apply(7, command)


def _apply_placement(data: bytes) -> None:
    """`PlacementMachine.apply` on a fresh placement driver (a malformed batch applies
    nothing; a well-formed one must apply without an exception)."""
    from cairn.placement.driver import PlacementDriver
    from cairn.placement.service import PlacementMachine
    from cairn.shard.replica import decode_request

    _, command = decode_request(data)
    PlacementMachine(PlacementDriver()).apply(7, command)


def _apply_conf_change(machine: RegionMachine, data: bytes) -> None:
    """`RegionPeer._on_conf_change`: the new peers from the change and its context."""
    from cairn.raft.types import decode_conf_change
    from cairn.shard.host import conf_change_peers

    cc = decode_conf_change(data)
    machine.set_peers(conf_change_peers(cc, machine.region), 7)


# -- config, admin JSON -------------------------------------------------------------------

_CONFIG_DIR = tempfile.mkdtemp(prefix="cairn-fuzz-config-")
_CONFIG_PATH = Path(_CONFIG_DIR) / "node.toml"


def config(data: bytes) -> None:
    """A config file's bytes through `config.load` (TOML, then every check)."""
    _CONFIG_PATH.write_bytes(data)
    load(_CONFIG_PATH)


def admin_json(data: bytes) -> None:
    """A POST /v1/placement body as the admin server reads it (`parse_json_body`), then
    `rules_from_json` and `validate`."""
    from cairn.admin.json_body import parse_json_body
    from cairn.admin.source import BadRequestError

    try:
        body = parse_json_body(data, required=True)
    except BadRequestError:
        return
    rules_from_json(body).validate()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "resp": resp,
    "frame": frame,
    "envelope": envelope,
    "raft": raft,
    "entry": entry,
    "config": config,
    "admin_json": admin_json,
}


def run_one(name: str, data: bytes) -> None:
    """Run target `name` on `data`, letting only its documented errors pass silently."""
    try:
        TARGETS[name](data)
    except ALLOWED[name]:
        pass


# -- seeds --------------------------------------------------------------------------------


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _message(entries: tuple[Entry, ...] = (), snapshot: Snapshot | None = None) -> Message:
    kind = MessageType.SNAP if snapshot is not None else MessageType.APP
    return Message(
        kind, to=11, frm=PEER_ID, term=3, log_term=2, index=6, entries=entries, commit=5,
        snapshot=snapshot, context=b"ctx",
    )


def _entries() -> list[Entry]:
    """Normal entries of every sort a region's log holds, and a conf change."""
    epoch = RegionEpoch(1, 1)
    commands = [
        encode_command("set", [b"k", b"v"], 1000),
        encode_command("incr", [b"n"], 1000),
        encode_command("hset", [b"h", b"f", b"v"], 1000),
        encode_command("lpush", [b"l", b"a", b"b"], 1000),
        encode_command("xadd", [b"s", b"*", b"f", b"v"], 1000),
        encode_command("expire", [b"k", b"10"], 1000),
        encode_command("del", [b"k", b"h"], 1000),
        encode_split(epoch, range_key(b"m"), 2, [21, 22, 23]),
        encode_prepare_merge(epoch, 2),
        encode_commit_merge(epoch, Region(2, b"", b"a", RegionEpoch(2, 1), ()), b""),
    ]
    out = [Entry(2, 7, EntryType.NORMAL, encode_request(b"r1", c)) for c in commands]
    change = ConfChange((ConfChangeSingle(ConfChangeType.ADD_NODE, 14),), context=b"")
    out.append(Entry(2, 7, EntryType.CONF_CHANGE, encode_conf_change(change)))
    return out


def _source_image() -> bytes:
    """`_SOURCE`'s final data as its leader snapshots it for a commit-merge: keys of
    several types (with a TTL, in its half of the keyspace) and an IDEMPOTENT request's
    records, so the image holds F, M and system records of every family."""
    from cairn.store.idempotency import tag_command
    from cairn.store.machine import StoreMachine
    from cairn.store.scope import Scope

    machine = StoreMachine(MemoryKeyspace(), scope=Scope.region(2, _HALF, b""))
    keys = [k for k in (b"k%d" % i for i in range(40)) if range_key(k) >= _HALF][:4]
    commands = [
        ("set", [keys[0], b"v", b"PX", b"100000"]),
        ("hset", [keys[1], b"f", b"v", b"g", b"w"]),
        ("rpush", [keys[2], b"a", b"b"]),
        ("zadd", [keys[3], b"1", b"m"]),
    ]
    for index, (name, args) in enumerate(commands, start=6):
        machine.apply(index, encode_command(name, args, 1000))
    tagged = tag_command([b"IDEMPOTENT", b"req-1", b"SET", keys[0], b"w"], 60_000, 100)
    assert not isinstance(tagged, ErrorReply)
    argv, _ = tagged
    machine.apply(10, encode_command(argv[0].decode(), argv[1:], 1000))
    return machine.snapshot()


def _merge_seeds() -> list[bytes]:
    """Commit-merges of `_SOURCE` into the left half (mode bit 2): with its real image,
    an empty one, and one whose source is not the neighbour."""
    image = _source_image()
    target = RegionEpoch(1, 1)
    commands = [
        encode_commit_merge(target, _SOURCE, image),
        encode_commit_merge(target, _SOURCE, b""),
        encode_commit_merge(target, replace(_SOURCE, start=b"\x30\x00"), image),
    ]
    return [b"\x04" + encode_request(b"r1", c) for c in commands]


_LIBRARY = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)"


def _frames() -> list[bytes]:
    snap = Snapshot(b"data", SnapshotMetadata(5, 2, ConfState(voters=(11, 12, 13))))
    ents = tuple(_entries()[:3])
    env = Envelope(
        EnvelopeKind.RAFT, 1, Peer(12, PEER_ID), Peer(11, ACCEPTOR_ID), RegionEpoch(1, 1),
        b"", b"", _message(ents),
    )
    snap_env = encode_envelope(Envelope(
        EnvelopeKind.RAFT, 1, Peer(12, PEER_ID), Peer(11, ACCEPTOR_ID), message=_message(
            snapshot=Snapshot(b"", snap.metadata))
    ))
    raft_msg = encode_message(_message(ents))
    bodies: list[list[Any]] = [
        [1, [raft_msg]],  # a retired RAFT frame (an older node's)
        [FrameKind.ENVELOPES, [encode_envelope(env)]],
        [FrameKind.FORWARD, 9, 2, [b"SET", b"k", b"v"]],
        [FrameKind.FORWARD, 9, 3, [b"GET", b"k"], 1, 1, 1],
        [FrameKind.FORWARD_REPLY, 9, b"+OK\r\n"],
        [4, 4, 0, False, encode_message(_message(  # a retired SNAPSHOT_CHUNK
            snapshot=Snapshot(b"", snap.metadata))), b"abc"],
        [FrameKind.ENVELOPE_CHUNK, 5, 0, True, snap_env, b"abc"],
        [FrameKind.PEERS, [[2, "127.0.0.1", 7001]], True, [1, 2, 3]],
        [FrameKind.REGIONS, [[encode_region(_REGION), 1]]],
        [FrameKind.PUBLISH, b"chan", b"msg"],
        [FrameKind.PLACEMENT, _placement_request()],
        [FrameKind.ACL_USERS, 3, [["alice", "on >pw ~app:* &* +@read -debug"]]],
        [FrameKind.FUNCTIONS, 2, [["lib", _LIBRARY]]],
        [FrameKind.ADMIN, 7, "cluster", ["regions"]],
        [FrameKind.ADMIN_REPLY, 7, 200, b"{}"],
    ]
    challenge = encode_frame([FrameKind.CHALLENGE, 2, b"\x01" * 32])
    proof = encode_frame([FrameKind.PROOF, PEER_ID, ACCEPTOR_ID, b"\x02" * 32])
    seeds = [challenge, proof]
    seeds += [challenge + encode_frame(body) for body in bodies]
    seeds.append(encode_frame([FrameKind.PEERS, [[2, "h", 1]], False, []]) + encode_frame(
        [FrameKind.PEERS, [[2, "h", 1]], False, []]))
    return seeds


def _placement_entries() -> list[bytes]:
    """Entries of the placement group's log (mode bit 3): batches of commands."""
    from cairn.placement.commands import AddNode, AllocIds
    from cairn.placement.service import encode_batch

    add = AddNode(PEER_ID, "127.0.0.1:7101", "127.0.0.1:7001", (("zone", "a"),), 5)
    batches = [(add, AllocIds(3)), (AllocIds(1),), ()]
    return [b"\x08" + encode_request(b"r1", encode_batch(b)) for b in batches]


def _placement_request() -> bytes:
    from cairn.placement.commands import AddNode, AllocIds
    from cairn.placement.service import PlacementRequest
    from cairn.placement.service import encode_message as encode_placement

    add = AddNode(PEER_ID, "127.0.0.1:7101", "127.0.0.1:7001", (("zone", "a"),), 5)
    return encode_placement(PlacementRequest(PEER_ID, 4, (add, AllocIds(3))))


def _config_seed() -> bytes:
    return (
        b'node_id = 1\ncluster_id = "dev"\nclient_addr = "127.0.0.1:7000"\n'
        b'peer_addr = "127.0.0.1:7100"\ndata_dir = "/tmp/cairn-fuzz-data"\n'
        b'cluster_secret = "0123456789abcdef0123"\nadmin_addr = "off"\npassword = "pw"\n'
        b'log_level = "info"\n[raft]\ntick_ms = 10\nelection_ticks = 30\n'
        b'heartbeat_ticks = 5\n[limits]\nrequest_timeout_ms = 3000\n'
        b'[peers]\n1 = "127.0.0.1:7100"\n2 = "127.0.0.1:7101"\n'
    )


def seeds(name: str) -> list[bytes]:
    """Valid (and a few nearly valid) inputs of target `name`."""
    if name == "resp":
        pipeline = _command(b"SET", b"k", b"v") + _command(b"GET", b"k")
        return [
            b"\x00" + pipeline, b"\x01" + _command(b"AUTH", b"pw"), b"\x81" + pipeline,
            b"\x00PING\r\n", b"\x00*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*0\r\n",
            b"\x00set k \"a\\x41\" 'b'\r\n",
        ]
    if name == "frame":
        return _frames()
    if name == "envelope":
        env = Envelope(
            EnvelopeKind.RAFT, 1, Peer(12, 2), Peer(11, 1), RegionEpoch(1, 1), b"a", b"z",
            _message(tuple(_entries())),
        )
        quiesce = Envelope(EnvelopeKind.QUIESCE, 1, Peer(12, 2), Peer(11, 1), term=3, commit=4)
        return [msgpack.packb(encode_envelope(e)) for e in (env, quiesce)]
    if name == "raft":
        snap = Snapshot(b"d", SnapshotMetadata(5, 2, ConfState(voters=(1, 2), learners=(3,))))
        msgs = [_message(tuple(_entries())), _message(snapshot=snap)]
        return [msgpack.packb(encode_message(m)) for m in msgs]
    if name == "entry":
        stored = [b"\x01" + encode_entry(e) for e in _entries()]
        applied = [bytes([2 if e.type is EntryType.CONF_CHANGE else 0]) + e.data
                   for e in _entries()]
        return stored + applied + _merge_seeds() + _placement_entries()
    if name == "config":
        return [_config_seed()]
    if name == "admin_json":
        rules = {"replicas": 3, "location_label": "zone",
                 "ranges": [{"name": "a", "start": "00", "end": "ff", "replicas": 5}]}
        return [json.dumps(rules).encode(), b'{"reason": "maintenance"}', b"{}"]
    raise KeyError(name)


def write_seeds(name: str, directory: str) -> None:
    """Write target `name`'s seeds, and its checked-in regression inputs, into
    `directory` (a libFuzzer corpus directory)."""
    os.makedirs(directory, exist_ok=True)
    inputs = seeds(name) + regressions(name)
    for i, data in enumerate(inputs):
        Path(directory, f"seed-{i:03d}").write_bytes(data)


REGRESSIONS = Path(__file__).parent / "regressions"
"""Inputs that once made a target fail (`regressions/<target>/*`): replayed by the CI pass."""


def regressions(name: str) -> list[bytes]:
    """The checked-in inputs that once made target `name` fail."""
    folder = REGRESSIONS / name
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
