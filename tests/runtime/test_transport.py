"""The TCP peer transport: handshake, batching, both directions, reconnect, strangers refused."""

from __future__ import annotations

import asyncio

import pytest

from cairn.raft.types import Entry, Message, MessageType
from cairn.runtime.frames import (
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    FrameKind,
    encode_frame,
    parse_hello,
)
from cairn.runtime.transport import TcpTransport, TransportConfig

LOOPBACK = ("127.0.0.1", 0)


def _msg(to: int, frm: int, index: int) -> Message:
    return Message(
        type=MessageType.APP, to=to, frm=frm, term=1, index=index, entries=(Entry(1, index + 1),)
    )


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


def test_messages_flow_both_ways_over_one_connection() -> None:
    async def main() -> None:
        a, b = await _pair()
        got_a: list[Message] = []
        got_b: list[Message] = []
        a.set_handler(lambda msgs: got_a.extend(msgs))
        b.set_handler(lambda msgs: got_b.extend(msgs))
        await _wait_for(lambda: a.connected(2) and b.connected(1))
        sent = [_msg(2, 1, i) for i in range(100)]
        for m in sent:
            a.send(2, [m])
        b.send(1, [_msg(1, 2, 7)])
        await _wait_for(lambda: len(got_b) == 100 and len(got_a) == 1)
        assert got_b == sent
        assert got_a == [_msg(1, 2, 7)]
        assert a.stats.frames_sent == 100  # one frame per send() call
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
        got: list[Message] = []
        await _wait_for(lambda: a.connected(2))
        address = b.bound_address
        await b.stop()
        await _wait_for(lambda: not a.connected(2))
        a.send(2, [_msg(2, 1, 1)])
        assert a.stats.messages_dropped == 1
        b2 = TcpTransport(2, address, {1: a.bound_address}, TransportConfig(backoff_initial=0.01))
        b2.set_handler(lambda msgs: got.extend(msgs))
        await b2.start()
        await _wait_for(lambda: a.connected(2))
        a.send(2, [_msg(2, 1, 2)])
        await _wait_for(lambda: len(got) == 1)
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
    from cairn.raft.types import Snapshot, SnapshotMetadata

    async def main() -> None:
        a, b = await _pair()
        got: list[Message] = []
        b.set_handler(lambda msgs: got.extend(msgs))
        await _wait_for(lambda: a.connected(2))
        data = bytes(range(256)) * (5 * 4096 + 17)  # about 5 MiB, not a multiple of a chunk
        snap = Snapshot(data=data, metadata=SnapshotMetadata(index=9, term=3))
        m = Message(type=MessageType.SNAP, to=2, frm=1, term=3, snapshot=snap)
        a.send(2, [m, _msg(2, 1, 10)])
        await _wait_for(lambda: len(got) == 2)
        assert got[0] == _msg(2, 1, 10) or got[1] == _msg(2, 1, 10)
        assert m in got
        assert a.stats.frames_sent >= 6  # 5+ chunk frames and one raft frame
        await a.stop()
        await b.stop()

    asyncio.run(main())
