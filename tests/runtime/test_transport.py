"""The TCP peer transport: handshake, batching, both directions, reconnect, strangers refused,
large snapshots in chunks, and the retired frame kinds of older nodes dropped."""

from __future__ import annotations

import asyncio

import pytest

from cairn.meta.region import Peer
from cairn.raft.types import Message, MessageType, Snapshot, SnapshotMetadata
from cairn.runtime.envelope_codec import TcpHostTransport
from cairn.runtime.frames import (
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    FrameKind,
    encode_frame,
    parse_hello,
)
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.envelope import Envelope, EnvelopeKind

LOOPBACK = ("127.0.0.1", 0)


def _reply(n: int) -> list[object]:
    return [FrameKind.FORWARD_REPLY, n, b"+OK\r\n"]


def _collect(t: TcpTransport) -> list[int]:
    """The request ids of the FORWARD_REPLY frames `t` receives."""
    got: list[int] = []
    t.on_forward_reply = lambda request_id, data: got.append(request_id)
    return got


async def _pair(cluster_b: str = "cairn") -> tuple[TcpTransport, TcpTransport]:
    a_config = TransportConfig(backoff_initial=0.01, client_addr="127.0.0.1:7001")
    a = TcpTransport(1, LOOPBACK, {}, a_config)
    b = TcpTransport(2, LOOPBACK, {}, TransportConfig(cluster_id=cluster_b, backoff_initial=0.01))
    await a.start()
    await b.start()
    a.add_peer(2, b.bound_address)
    b.add_peer(1, a.bound_address)
    return a, b


async def _wait_for(cond: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_frames_flow_both_ways_over_one_connection() -> None:
    async def main() -> None:
        a, b = await _pair()
        got_a, got_b = _collect(a), _collect(b)
        await _wait_for(lambda: a.connected(2) and b.connected(1))
        for i in range(100):
            assert a.send_frame(2, _reply(i))
        b.send_frame(1, _reply(7))
        await _wait_for(lambda: len(got_b) == 100 and len(got_a) == 1)
        assert got_b == list(range(100))  # in order
        assert got_a == [7]
        assert a.stats.frames_sent == 100
        assert a.stats.connects == 1 and b.stats.connects == 1
        # The handshake carries the client address each side announces (b announces none).
        assert b.client_addrs == {1: "127.0.0.1:7001"} and a.client_addrs == {}
        await a.stop()
        await b.stop()

    asyncio.run(main())


def test_a_handshake_without_a_client_address_is_still_understood() -> None:
    old = parse_hello([FrameKind.HELLO, 1, "cairn", 3])
    assert (old.node_id, old.client_addr) == (3, "")
    new = parse_hello([FrameKind.HELLO, 1, "cairn", 3, "h:1"])
    assert new.client_addr == "h:1"
    with pytest.raises(FrameError):
        parse_hello([FrameKind.HELLO, 1, "cairn", 3, 7])


def test_dialer_reconnects_after_the_peer_restarts() -> None:
    async def main() -> None:
        a, b = await _pair()
        await _wait_for(lambda: a.connected(2))
        address = b.bound_address
        await b.stop()
        await _wait_for(lambda: not a.connected(2))
        assert not a.send_frame(2, _reply(1))  # dropped: the peer is down
        b2 = TcpTransport(2, address, {1: a.bound_address}, TransportConfig(backoff_initial=0.01))
        got = _collect(b2)
        await b2.start()
        await _wait_for(lambda: a.connected(2))
        a.send_frame(2, _reply(2))
        await _wait_for(lambda: got == [2])
        await a.stop()
        await b2.stop()

    asyncio.run(main())


def test_peer_of_another_cluster_is_refused() -> None:
    async def main() -> None:
        a, b = await _pair(cluster_b="other")
        await asyncio.sleep(0.2)
        assert not a.connected(2) and not b.connected(1)
        assert a.stats.rejected_peers + b.stats.rejected_peers >= 1
        await a.stop()
        await b.stop()

    asyncio.run(main())


def test_garbage_from_a_peer_closes_only_that_connection() -> None:
    async def main() -> None:
        a = TcpTransport(1, LOOPBACK, {})
        await a.start()
        host, port = a.bound_address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(encode_frame([FrameKind.HELLO, 1, "cairn", 9]))
        writer.write(b"\xff\xff\xff\xff garbage")
        await writer.drain()
        # The server sends its CHALLENGE (a nonce: nothing about the node), then closes
        # the connection: read() reaches EOF.
        data = await asyncio.wait_for(reader.read(), 5)
        decoder = FrameDecoder(1024)
        decoder.feed(data)
        [challenge] = decoder.frames()
        assert challenge[:2] == [FrameKind.CHALLENGE, PROTOCOL_VERSION]
        assert len(challenge) == 3 and len(challenge[2]) == 32
        assert not a.connected(9)
        writer.close()
        await a.stop()

    asyncio.run(main())


def test_a_large_snapshot_travels_in_chunks() -> None:
    async def main() -> None:
        a, b = await _pair()
        got: list[Envelope] = []
        TcpHostTransport(b).set_handler(got.extend)
        await _wait_for(lambda: a.connected(2))
        data = bytes(range(256)) * (5 * 4096 + 17)  # about 5 MiB, not a multiple of a chunk
        snap = Snapshot(data=data, metadata=SnapshotMetadata(index=9, term=3))
        m = Message(type=MessageType.SNAP, to=21, frm=11, term=3, snapshot=snap)
        big = Envelope(EnvelopeKind.RAFT, 4, Peer(11, 1), Peer(21, 2), message=m)
        small = Envelope(EnvelopeKind.WAKE, 4, Peer(11, 1), Peer(21, 2))
        TcpHostTransport(a).send(2, [big, small])
        await _wait_for(lambda: len(got) == 2)
        assert small in got and big in got
        assert a.stats.frames_sent >= 6  # 5+ chunk frames and one envelopes frame
        await a.stop()
        await b.stop()

    asyncio.run(main())


def test_an_older_nodes_retired_frames_are_dropped_and_the_link_stays() -> None:
    async def main() -> None:
        a, b = await _pair()
        got = _collect(b)
        await _wait_for(lambda: a.connected(2) and b.connected(1))
        a.send_frame(2, [1, [b"a raft message"]])  # RAFT, as an older node sends it
        a.send_frame(2, [4, 1, 0, True, b"head", b"piece"])  # SNAPSHOT_CHUNK
        a.send_frame(2, _reply(5))
        await _wait_for(lambda: got == [5])
        assert b.connected(1) and b.stats.connects == 1
        a.send_frame(2, [99, b"unknown"])  # a kind that never existed closes the link
        # (a redials at once: the close shows as a second connection as often as a gap)
        await _wait_for(lambda: not b.connected(1) or b.stats.connects > 1)
        await a.stop()
        await b.stop()

    asyncio.run(main())
