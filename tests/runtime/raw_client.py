"""A minimal RESP client that returns each reply's raw bytes, for byte-for-byte comparisons."""

from __future__ import annotations

import socket

import hiredis


def encode_command(args: list[bytes]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RawClient:
    """Sends one command at a time and returns the exact bytes of its reply."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def call(self, args: list[bytes]) -> bytes:
        """Send `args`, return the raw reply."""
        self.sock.sendall(encode_command(args))
        return self.read_reply()

    def read_reply(self) -> bytes:
        """Read exactly one reply (the server sends nothing unasked)."""
        reader = hiredis.Reader()
        raw = bytearray()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {bytes(raw)!r}")
            raw += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return bytes(raw)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()
