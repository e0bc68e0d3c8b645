"""Redis's protected mode: with no password, only loopback clients are served.

The decision is a pure function, tested with a table. The live checks run a real
`RespServer` bound to 0.0.0.0 and connect through this host's own non-loopback address
(the kernel then gives the connection that address as its source, so the server sees a
remote client), and compare the refusal byte for byte with a redis-server 7.0 started
the same way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from cairn.resp.reply import SimpleString
from cairn.runtime.config import Limits
from cairn.runtime.protected_mode import DENIED, is_local, refuses, start_warning
from cairn.runtime.server import ClientConnection, Done, RespServer


@pytest.mark.parametrize(
    ("protected", "password", "host", "refused"),
    [
        (True, None, "192.0.2.7", True),
        (True, None, "10.1.2.3", True),
        (True, None, "2001:db8::1", True),
        (True, None, "127.0.0.1", False),
        (True, None, "127.3.4.5", False),
        (True, None, "::1", False),
        (True, None, "::ffff:127.0.0.1", False),
        (True, None, "::ffff:192.0.2.7", True),
        (True, None, "", True),  # an unknown address is not local
        (True, "pw", "192.0.2.7", False),
        (False, None, "192.0.2.7", False),
    ],
)
def test_refusal_rule(protected: bool, password: str | None, host: str, refused: bool) -> None:
    assert refuses(protected, password, host) is refused
    assert is_local(host) is (host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1"))


def test_start_warning() -> None:
    assert start_warning(True, None, "127.0.0.1") is None
    assert start_warning(True, "pw", "0.0.0.0") is None
    warning = start_warning(True, None, "0.0.0.0")
    assert warning is not None and "protected mode" in warning and "password_file" in warning
    insecure = start_warning(False, None, "0.0.0.0")
    assert insecure is not None and insecure.startswith("INSECURE")


def _own_address() -> str:
    """A non-loopback address of this host (the source a route to the outside uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            pytest.skip("this host has no non-loopback IPv4 address")
        host = str(probe.getsockname()[0])
    if is_local(host):
        pytest.skip("this host has no non-loopback IPv4 address")
    return host


class _Pong:
    """A router that answers every command PONG."""

    def execute(self, client: ClientConnection, args: list[bytes], done: Done) -> None:
        done(SimpleString("PONG"))


async def _ask(host: str, port: int) -> bytes:
    """PING from a fresh connection to host:port; what came back until close or 1 s."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"PING\r\n")
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 1.0):
            data += chunk
            if data == b"+PONG\r\n":
                break
        else:
            data += b"<closed>"
    except (TimeoutError, ConnectionResetError):
        pass
    writer.close()
    return data


def test_remote_clients_are_denied_like_redis(
    caplog: pytest.LogCaptureFixture, redis_denial: bytes
) -> None:
    own = _own_address()

    async def scenario() -> None:
        server = RespServer(_Pong(), Limits(), password=None, protected_mode=True)
        with caplog.at_level(logging.WARNING, logger="cairn.server"):
            await server.start("0.0.0.0", 0)
        assert "protected mode" in caplog.text
        port = server.bound_address[1]
        try:
            assert await _ask(own, port) == DENIED + b"<closed>"
            assert await _ask("127.0.0.1", port) == b"+PONG\r\n"
            server.protected_mode = False  # CONFIG SET protected-mode no
            assert await _ask(own, port) == b"+PONG\r\n"
            server.protected_mode, server.password = True, "pw"  # a password: not refused
            assert await _ask(own, port) == b"+PONG\r\n"
            assert server.stats["rejected_connections"] == 1
        finally:
            await server.stop()

    asyncio.run(scenario())
    assert redis_denial == DENIED


@pytest.fixture
def redis_denial() -> Iterator[bytes]:
    """What redis-server 7.0, bound to 0.0.0.0 with no password, sends a remote client."""
    own = _own_address()
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "0.0.0.0", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((own, port), timeout=2) as sock:
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                    yield data
                    return
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
