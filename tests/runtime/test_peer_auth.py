"""The peer port: the handshake (sans-I/O), frame checks, and the attacks of issue 14
replayed against a real 3-node cluster on loopback (each must now fail: the connection
closed, no effect, the node running, one log line and no traceback)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.meta.region import Peer
from cairn.raft.types import Entry, EntryType, Message, MessageType
from cairn.runtime.config import ConfigError, from_mapping
from cairn.runtime.envelope_codec import encode_envelope
from cairn.runtime.frame_checks import (
    check_entries,
    check_forward,
    check_join_peers,
    check_peers,
)
from cairn.runtime.frames import PROTOCOL_VERSION, FrameDecoder, FrameError, FrameKind, encode_frame
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.peer_auth import NONCE_SIZE, Handshake, HandshakeError, Role, proof_mac
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.replica import encode_request
from cairn.store.machine import encode_command

SECRET = b"unit-test-secret-0123456789"


def _side(role: Role, node: int, expected: int | None = None, **kw: Any) -> Handshake:
    kw.setdefault("knows", lambda n: n in (1, 2, 3))
    secret = kw.pop("secret", SECRET)
    return Handshake(
        role, secret, "c", node, secrets.token_bytes(NONCE_SIZE), expected=expected, **kw
    )


def _run(dialer: Handshake, acceptor: Handshake) -> None:
    """Deliver every frame both ways until neither side has more to say."""
    to_acceptor, to_dialer = dialer.start(), acceptor.start()
    while to_acceptor or to_dialer:
        out_a = [f for frame in to_acceptor for f in acceptor.receive(frame)]
        out_d = [f for frame in to_dialer for f in dialer.receive(frame)]
        to_acceptor, to_dialer = out_d, out_a


# -- the handshake, sans-I/O -------------------------------------------------------------


def test_both_sides_authenticate_each_other() -> None:
    dialer, acceptor = _side(Role.DIALER, 1, expected=2), _side(Role.ACCEPTOR, 2)
    _run(dialer, acceptor)
    assert dialer.done and acceptor.done
    assert (dialer.peer, acceptor.peer) == (2, 1)
    assert not acceptor.restricted


@pytest.mark.parametrize("dialer_secret", [b"another-secret-0123456789", b""])
def test_a_wrong_secret_is_refused(dialer_secret: bytes) -> None:
    dialer = _side(Role.DIALER, 1, expected=2, secret=dialer_secret)
    acceptor = _side(Role.ACCEPTOR, 2)
    with pytest.raises(HandshakeError, match="failed authentication"):
        _run(dialer, acceptor)
    assert not acceptor.done


def test_an_acceptor_without_the_secret_is_refused_by_the_dialer() -> None:
    dialer = _side(Role.DIALER, 1, expected=2)
    impostor = _side(Role.ACCEPTOR, 2, secret=b"another-secret-0123456789")
    with pytest.raises(HandshakeError):
        _run(dialer, impostor)  # the impostor refuses the dialer's proof first
    # Even one that accepted anything cannot forge its own proof:
    dialer = _side(Role.DIALER, 1, expected=2)
    dialer.start()
    dialer.receive([FrameKind.CHALLENGE, PROTOCOL_VERSION, os.urandom(NONCE_SIZE)])
    with pytest.raises(HandshakeError, match="failed authentication"):
        dialer.receive([FrameKind.PROOF, 2, 1, os.urandom(32)])


def test_a_replayed_proof_fails_on_a_new_connection() -> None:
    dialer, acceptor = _side(Role.DIALER, 1, expected=2), _side(Role.ACCEPTOR, 2)
    recorded_challenge = dialer.start()[0]
    [recorded_proof] = dialer.receive(acceptor.start()[0])
    acceptor.receive(recorded_challenge)
    acceptor.receive(recorded_proof)
    assert acceptor.done  # the original connection was fine
    fresh = _side(Role.ACCEPTOR, 2)  # a new connection: a new nonce
    fresh.start()
    fresh.receive(recorded_challenge)
    with pytest.raises(HandshakeError, match="failed authentication"):
        fresh.receive(recorded_proof)


def test_a_reflected_nonce_is_refused() -> None:
    acceptor = _side(Role.ACCEPTOR, 2)
    [challenge] = acceptor.start()
    with pytest.raises(HandshakeError, match="reflection"):
        acceptor.receive(challenge)


def test_a_proof_for_one_node_does_not_open_another() -> None:
    """Node 1's proof addressed to node 2 (relayed by someone squatting node 2's address)
    is refused by node 3."""
    dialer, node3 = _side(Role.DIALER, 1, expected=2), _side(Role.ACCEPTOR, 3)
    dialer.start()
    [proof] = dialer.receive(node3.start()[0])
    node3.receive([FrameKind.CHALLENGE, PROTOCOL_VERSION, dialer.nonce])
    with pytest.raises(HandshakeError, match="meant for node 2"):
        node3.receive(proof)


@pytest.mark.parametrize(
    ("dialer_id", "expected", "acceptor_id", "error"),
    [
        (2, 2, 2, "our own node id"),  # claims the acceptor's id
        (1, 3, 2, "meant for node 3"),  # dialled node 3, reached node 2
        (1, 2, 3, "meant for node 2"),
    ],
)
def test_wrong_node_ids_are_refused(
    dialer_id: int, expected: int, acceptor_id: int, error: str
) -> None:
    dialer = _side(Role.DIALER, dialer_id, expected=expected)
    with pytest.raises(HandshakeError, match=error):
        _run(dialer, _side(Role.ACCEPTOR, acceptor_id))


@pytest.mark.parametrize("claimed", [0, -1, 1000, 10**30, "1", None, True])
def test_impossible_node_ids_are_refused(claimed: object) -> None:
    acceptor = _side(Role.ACCEPTOR, 2)
    acceptor.start()
    acceptor.receive([FrameKind.CHALLENGE, PROTOCOL_VERSION, os.urandom(NONCE_SIZE)])
    with pytest.raises(HandshakeError):
        acceptor.receive([FrameKind.PROOF, claimed, 2, os.urandom(32)])


def test_the_dialer_checks_who_answered() -> None:
    dialer = _side(Role.DIALER, 1, expected=2)
    dialer.start()
    nonce = os.urandom(NONCE_SIZE)
    dialer.receive([FrameKind.CHALLENGE, PROTOCOL_VERSION, nonce])
    mac = proof_mac(SECRET, Role.ACCEPTOR, "c", 3, 1, dialer.nonce, nonce)  # a valid one
    with pytest.raises(HandshakeError, match="dialled node 2 but node 3"):
        dialer.receive([FrameKind.PROOF, 3, 1, mac])


def test_an_unknown_or_joining_node_is_only_restricted() -> None:
    stranger = _side(Role.DIALER, 999, expected=2)
    acceptor = _side(Role.ACCEPTOR, 2)
    _run(stranger, acceptor)
    assert acceptor.done and acceptor.peer == 999 and acceptor.restricted
    joiner = _side(Role.DIALER, 3, expected=None)  # dials a join address
    acceptor = _side(Role.ACCEPTOR, 2)
    _run(joiner, acceptor)
    assert acceptor.restricted and joiner.peer == 2


@pytest.mark.parametrize(
    "frame",
    [
        [FrameKind.HELLO, 1, "cairn", 999, ""],  # the old, unauthenticated opening
        [FrameKind.CHALLENGE, 1, b"x" * NONCE_SIZE],  # an old protocol version
        [FrameKind.CHALLENGE, PROTOCOL_VERSION, b"short"],
        [FrameKind.PROOF, 1, 2, b"x" * 32],  # a proof before the challenge
    ],
)
def test_anything_but_a_challenge_first_is_refused(frame: list[Any]) -> None:
    acceptor = _side(Role.ACCEPTOR, 2)
    acceptor.start()
    with pytest.raises(HandshakeError):
        acceptor.receive(frame)


# -- frame checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        [FrameKind.FORWARD, 1, 99, [b"set", b"k", b"v"]],  # protocol 99
        [FrameKind.FORWARD, 1, 2, [b"set", "k"]],  # a str argument
        [FrameKind.FORWARD, 1, 2, []],
        [FrameKind.FORWARD, 1, 2, b"flushall"],
        [FrameKind.FORWARD, -1, 2, [b"ping"]],
        [FrameKind.FORWARD, 1, 2, [b"ping"], 1, 2**64, 0],
        [FrameKind.FORWARD, 1, 2, [b"ping"], 1, 1],
    ],
)
def test_malformed_forwards_are_refused(frame: list[Any]) -> None:
    with pytest.raises(FrameError):
        check_forward(frame)


def test_a_well_formed_forward_is_read() -> None:
    fwd = check_forward([FrameKind.FORWARD, 7, 3, [b"get", b"k"], 1, 2, 3])
    assert (fwd.request_id, fwd.protocol, fwd.argv, fwd.target) == (7, 3, [b"get", b"k"], (1, 2, 3))
    with pytest.raises(FrameError, match="over the limit"):
        check_forward([FrameKind.FORWARD, 7, 3, [b"x"] * 5], max_args=4)


@pytest.mark.parametrize(
    "entries",
    [
        [[1, "127.0.0.1", 0]],
        [[1, "127.0.0.1", 70000]],
        [[0, "127.0.0.1", 1]],
        [[5000, "127.0.0.1", 1]],
        [[1, "", 1]],
        [[1, "evil host", 1]],
        [[1, b"127.0.0.1", 1]],
        [[1, "127.0.0.1"]],
        [[1, "h" * 300, 1]],
    ],
)
def test_peers_frames_with_bad_addresses_are_refused(entries: list[Any]) -> None:
    with pytest.raises(FrameError):
        check_peers([FrameKind.PEERS, entries, False, []])


def test_an_unknown_node_may_only_announce_itself() -> None:
    own = check_peers([FrameKind.PEERS, [[7, "127.0.0.1", 17007]], True, []])
    check_join_peers(7, own)
    other = check_peers([FrameKind.PEERS, [[2, "10.6.6.6", 17002]], False, []])
    with pytest.raises(FrameError):
        check_join_peers(7, other)
    with pytest.raises(FrameError):
        check_join_peers(7, check_peers([FrameKind.PEERS, [], False, [7]]))


def _append(*entries: Entry) -> Message:
    return Message(MessageType.APP, to=1001, frm=1002, term=2, entries=entries)


GOOD = encode_request(b"rid", encode_command("set", [b"k", b"v"], 1))


@pytest.mark.parametrize(
    "entry",
    [
        Entry(2, 5, data=b"\xff not msgpack"),
        Entry(2, 5, data=encode_request(b"rid", b"\xff not a command")),
        Entry(2, 5, data=b"\x93\x01\x02\x03"),  # msgpack, not [rid, command]
        Entry(2, 5, EntryType.CONF_CHANGE, data=b"\x01"),
    ],
)
def test_an_append_with_a_malformed_entry_is_refused(entry: Entry) -> None:
    check_entries(_append(Entry(2, 4, data=GOOD), Entry(2, 5)), region=True)
    with pytest.raises(FrameError, match=r"cannot be applied|not"):
        check_entries(_append(Entry(2, 4, data=GOOD), entry), region=True)


# -- config ------------------------------------------------------------------------------


def test_a_node_without_a_secret_refuses_to_start_unless_told(tmp_path: Path) -> None:
    base = {"node_id": 1, "data_dir": str(tmp_path), "peers": {"1": "127.0.0.1:17001"}}
    with pytest.raises(ConfigError, match="cluster_secret_file: required"):
        from_mapping(base)
    assert from_mapping(base | {"insecure_peer_port": True}).cluster_secret is None
    path = tmp_path / "secret"
    path.write_text("s" * 40 + "\n")
    config = from_mapping(base | {"cluster_secret_file": str(path)})
    assert config.cluster_secret == b"s" * 40 and "ssss" not in repr(config)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        from_mapping(base | {"cluster_secret": "short"})
    with pytest.raises(ConfigError, match="not both"):
        from_mapping(base | {"cluster_secret": "s" * 40, "cluster_secret_file": str(path)})
    with pytest.raises(ConfigError, match="cannot read"):
        from_mapping(base | {"cluster_secret_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="contradicts"):
        from_mapping(base | {"cluster_secret": "s" * 40, "insecure_peer_port": True})


def test_a_local_cluster_generates_its_secret_private(tmp_path: Path) -> None:
    cluster = LocalCluster.plan(tmp_path, 2)
    cluster.write_configs()
    assert cluster.secret_path.stat().st_mode & 0o777 == 0o600
    assert len(cluster.secret_path.read_text().strip()) == 64
    line = f'cluster_secret_file = "{cluster.secret_path}"'
    assert line in cluster.spec(1).config_path.read_text()


# -- the transport: deadlines and pre-authentication limits -----------------------------


def test_a_silent_or_oversized_stranger_is_cut_off() -> None:
    async def main() -> None:
        config = TransportConfig(secret=SECRET, handshake_timeout=0.3)
        node = TcpTransport(1, ("127.0.0.1", 0), {}, config)
        await node.start()
        host, port = node.bound_address
        try:
            start = time.monotonic()
            reader, writer = await asyncio.open_connection(host, port)
            await asyncio.wait_for(reader.read(), 5)  # its CHALLENGE, then EOF
            assert 0.25 < time.monotonic() - start < 3
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write((256 << 20).to_bytes(4, "big"))  # announces 256 MiB
            await asyncio.wait_for(reader.read(), 1)  # closed at once, not after 0.3 s
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(encode_frame([FrameKind.CHALLENGE, PROTOCOL_VERSION, b"x" * 4000]))
            await asyncio.wait_for(reader.read(), 1)
            writer.close()
            assert node.stats.rejected_peers == 3 and not node._conns
        finally:
            await node.stop()

    asyncio.run(main())


def test_a_stranger_cannot_teach_addresses_but_a_joiner_can_announce_itself() -> None:
    async def main() -> None:
        config = TransportConfig(secret=SECRET, handshake_timeout=2)
        node = TcpTransport(1, ("127.0.0.1", 0), {2: ("127.0.0.1", 1)}, config)
        seen: list[list[Any]] = []
        node.handlers[FrameKind.PEERS] = lambda peer, frame: seen.append(frame)
        await node.start()
        try:
            # No secret: the PEERS frame is never read.
            reader, writer = await asyncio.open_connection(*node.bound_address)
            fake = [FrameKind.PEERS, [[2, "10.6.6.6", 1]], False, []]
            writer.write(encode_frame([FrameKind.HELLO, 1, "cairn", 9, ""]) + encode_frame(fake))
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
            # The secret, an unknown id (a joiner): it may announce itself, nothing more.
            joiner = TcpTransport(7, ("127.0.0.1", 0), {}, config)
            reader, writer = await asyncio.open_connection(*node.bound_address)
            assert await joiner.dial_handshake(reader, writer) is not None
            writer.write(encode_frame([FrameKind.PEERS, [[7, "127.0.0.1", 17007]], True, []]))
            writer.write(encode_frame(fake))
            await asyncio.wait_for(reader.read(), 5)  # closed after the second
            assert seen == [[FrameKind.PEERS, [[7, "127.0.0.1", 17007]], True, []]]
            writer.close()
        finally:
            await node.stop()

    asyncio.run(main())


# -- the attacks, against a real cluster -------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("peer-auth")
    with running_cluster(root, password="pw", settings={"peer_handshake_timeout_s": 1.0}) as c:
        yield c


def _peer_socket(cluster: LocalCluster, node: int) -> socket.socket:
    sock = socket.create_connection((HOST, cluster.spec(node).peer_port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, limit: float = 5.0) -> bytes:
    """Everything the node sends until it closes the connection (fails after `limit`)."""
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _authenticated(cluster: LocalCluster, node: int, as_node: int) -> socket.socket:
    """A connection to `node` that knows the cluster secret, authenticated as `as_node`."""
    secret = cluster.secret_path.read_bytes().strip()
    sock = _peer_socket(cluster, node)
    hs = Handshake(Role.DIALER, secret, cluster.cluster_id, as_node, os.urandom(NONCE_SIZE),
                   expected=node)  # fmt: skip
    sock.sendall(b"".join(encode_frame(f) for f in hs.start()))
    decoder = FrameDecoder(1 << 20)
    while not hs.done:
        decoder.feed(sock.recv(4096))
        while not hs.done and (frame := decoder.next_frame()) is not None:
            sock.sendall(b"".join(encode_frame(f) for f in hs.receive(frame)))
    hello = [FrameKind.HELLO, PROTOCOL_VERSION, cluster.cluster_id, as_node, ""]
    sock.sendall(encode_frame(hello))
    return sock


def _terms(cluster: LocalCluster, node: int) -> dict[str, int]:
    info = client(cluster, node).info("raft")
    return {k: v["term"] for k, v in info.items() if isinstance(v, dict) and "term" in v}


def _forged_hello_and(frames: list[list[Any]]) -> bytes:
    hello = [FrameKind.HELLO, 1, "dev", 999, "127.0.0.1:1"]
    return b"".join(encode_frame(f) for f in [hello, *frames])


def test_a_stranger_learns_nothing_and_cannot_flush(cluster: LocalCluster) -> None:
    c = client(cluster, 1)
    c.set("keep", "me")
    leader = cluster.wait_for_leader()
    sock = _peer_socket(cluster, leader)
    sock.sendall(_forged_hello_and([[FrameKind.FORWARD, 1, 2, [b"FLUSHALL"]]]))
    decoder = FrameDecoder(1 << 20)
    decoder.feed(_read_until_closed(sock))
    [challenge] = decoder.frames()  # no cluster id, node id or client address
    assert challenge[0] == FrameKind.CHALLENGE and b"dev" not in challenge[2:]
    time.sleep(0.2)
    assert c.get("keep") == b"me"


def test_a_forged_heartbeat_does_not_bump_the_term(cluster: LocalCluster) -> None:
    before = _terms(cluster, 2)
    beat = Message(MessageType.HEARTBEAT, to=1002, frm=1001, term=1_000_001)
    env = Envelope(EnvelopeKind.RAFT, 1, Peer(1001, 1), Peer(1002, 2), message=beat)
    sock = _peer_socket(cluster, 2)
    sock.sendall(_forged_hello_and([[FrameKind.ENVELOPES, [encode_envelope(env)]]]))
    _read_until_closed(sock)
    assert _terms(cluster, 2) == before and max(before.values()) < 1000


def test_a_silent_or_flooding_stranger_is_cut_off(cluster: LocalCluster) -> None:
    sock = _peer_socket(cluster, 3)
    start = time.monotonic()
    _read_until_closed(sock)  # the handshake deadline (1 s here)
    assert 0.8 < time.monotonic() - start < 4
    sock = _peer_socket(cluster, 3)
    sock.sendall((256 << 20).to_bytes(4, "big") + b"x" * 60000)
    _read_until_closed(sock, limit=2)


def test_a_peer_holding_the_secret_is_still_checked(cluster: LocalCluster) -> None:
    """Even an authenticated connection (a bug, version skew, a stolen secret) cannot
    crash a node, poison its log or bypass AUTH as a stranger."""
    c = client(cluster, 1)
    c.set("still", "here")
    bad_entry = Entry(1, 10**6, data=b"\xff\xfe garbage")
    app = Message(MessageType.APP, to=1001, frm=1002, term=1, entries=(bad_entry,))
    env = Envelope(EnvelopeKind.RAFT, 1, Peer(1002, 2), Peer(1001, 1), message=app)
    attacks = [
        (2, [FrameKind.FORWARD, 1, 99, [b"SET", b"still", b"gone"]]),  # protocol 99
        (2, [FrameKind.ENVELOPES, [encode_envelope(env)]]),  # a malformed entry
        (2, [FrameKind.PEERS, [[3, "10.6.6.6", 1]], False, ["x"]]),
        (2, [FrameKind.REGIONS, "not a map"]),
        (77, [FrameKind.FORWARD, 1, 2, [b"FLUSHALL"]]),  # a node it does not know
    ]
    for as_node, frame in attacks:
        sock = _authenticated(cluster, 1, as_node)
        sock.sendall(encode_frame(frame))
        _read_until_closed(sock)
    for node in (1, 2, 3):
        assert cluster.running(node)
    assert c.get("still") == b"here"
    assert c.set("after", "ok") and c.get("after") == b"ok"
    c.close()
    cluster.stop(1)  # a restart replays the log: nothing bad may be in it
    cluster.start(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if client(cluster, 1, socket_timeout=1).get("still") == b"here":
                break
        except redis.RedisError:
            time.sleep(0.2)
    assert cluster.running(1)
    logs = {n: cluster.spec(n).log_path.read_text() for n in (1, 2, 3)}
    assert not any("Traceback" in text for text in logs.values())
    refused = logs[1].count("closing the peer connection of node")
    assert refused == len(attacks)
