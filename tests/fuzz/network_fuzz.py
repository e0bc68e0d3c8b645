"""A network fuzzer: mutated bytes at a live cluster's client, peer and admin ports.

`Mutator` is a seeded byte mutator (libFuzzer's usual moves: flip, insert, erase,
duplicate, splice in interesting tokens such as `-1`, `\\r\\n` or a huge length). The
drivers open a connection, send mutated messages (sometimes cut into pieces), read
whatever comes back for a moment and close; what a node must survive:

* client port: mutated RESP (multibulk and inline), before AUTH on a cluster with a
  password and after it;
* peer port before authentication: garbage, partial and mutated handshakes;
* peer port after authenticating as a test peer with the cluster secret (`Handshake` as a
  dialer, then HELLO): mutated frames of every kind. Only frames the node's own checks
  refuse are sent (checked locally with `fuzz_targets`), plus well-formed harmless ones
  (FORWARD of PING/GET, FORWARD_REPLY, PUBLISH): an authenticated peer is trusted by
  design (it holds the secret), so a mutated message that is a *valid* Raft message
  would test Raft against a lying member, which is not the contract under test;
* admin port: mutated HTTP requests without a token (anything), and with the token
  mutated JSON bodies that the views refuse (a valid one would really change the
  cluster's placement or drain a node).

Each driver returns how many messages it sent; `Fuzzer.run` runs them round robin
until a deadline.
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fuzz_targets
import msgpack

from cairn.admin.views import SchemaError, rules_from_json
from cairn.placement.model import InvalidRulesError
from cairn.raft.wire import WireFormatError
from cairn.runtime.frames import PROTOCOL_VERSION, FrameDecoder, FrameError, FrameKind, encode_frame
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.peer_auth import NONCE_SIZE, Handshake, Role

INTERESTING = [
    b"\r\n", b"\r", b"\n", b"\x00", b"-1", b"0", b"4294967296", b"9223372036854775808",
    b"*", b"$", b"*1048577\r\n", b"$536870913\r\n", b"\"", b"'", b"\xff" * 4, b"\x7f\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff", b"\xc1", b"{", b"[", b"}", b"%", b" ",
]
"""Tokens spliced into inputs: delimiters, limits and their neighbours, msgpack headers."""


@dataclass
class Mutator:
    """Seeded byte-level mutations."""

    rng: random.Random

    def mutate(self, data: bytes, rounds: int = 0) -> bytes:
        """`data` with 1 to 4 (or `rounds`) random mutations."""
        buf = bytearray(data)
        for _ in range(rounds or self.rng.randint(1, 4)):
            self._once(buf)
        return bytes(buf)

    def _once(self, buf: bytearray) -> None:
        rng = self.rng
        at = rng.randint(0, len(buf))
        move = rng.randrange(6)
        if move == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif move == 1:
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif move == 2 and buf:
            del buf[at : at + rng.randint(1, 16)]
        elif move == 3 and buf:
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start : start + rng.randint(1, 32)]
        elif move == 4:
            buf[at:at] = rng.choice(INTERESTING)
        elif buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)

    def pieces(self, data: bytes) -> list[bytes]:
        """`data` whole, or cut at random points (as TCP may deliver it)."""
        if len(data) < 2 or self.rng.random() < 0.5:
            return [data]
        cuts = sorted(self.rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def resp(*args: bytes) -> bytes:
    """One RESP multibulk request."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


CLIENT_SEEDS = [
    resp(b"PING"), resp(b"SET", b"fz:k", b"v"), resp(b"GET", b"fz:k"), resp(b"AUTH", b"nope"),
    resp(b"HELLO", b"3"), resp(b"INCR", b"fz:n"), resp(b"HSET", b"fz:h", b"f", b"v"),
    resp(b"LPUSH", b"fz:l", b"a", b"b"), resp(b"XADD", b"fz:s", b"*", b"f", b"v"),
    resp(b"MULTI") + resp(b"SET", b"fz:k", b"1") + resp(b"EXEC"), resp(b"CLIENT", b"SETNAME", b"x"),
    resp(b"MGET", b"fz:a", b"fz:b"), b"PING\r\n", b"SET fz:i \"a\\x41\" 'b'\r\n", b"*0\r\n",
]
"""Client requests to mutate (no command that changes the server's configuration)."""


def _recv_for(sock: socket.socket, seconds: float, limit: int = 1 << 20) -> bytes:
    """Whatever arrives within `seconds` (up to `limit` bytes), until EOF."""
    sock.settimeout(seconds)
    out = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while len(out) < limit and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, OSError):
        pass
    return bytes(out)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=2.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _send_all(sock: socket.socket, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            sock.sendall(piece)
    except OSError:
        pass  # the node closed the connection: what it should do with garbage


@dataclass
class Fuzzer:
    """Mutated traffic at every port of `cluster` (see the module docstring)."""

    cluster: LocalCluster
    seed: int = 1
    read_s: float = 0.02
    rng: random.Random = field(init=False)
    mutator: Mutator = field(init=False)
    sent: dict[str, int] = field(default_factory=dict)
    secret: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.mutator = Mutator(self.rng)
        self.secret = self.cluster.secret_path.read_bytes().strip()

    def _node(self) -> int:
        return self.rng.choice([n.node_id for n in self.cluster.specs])

    # -- client port ------------------------------------------------------------------

    def client(self) -> int:
        """A connection of mutated requests, authenticated first half of the time."""
        node = self.cluster.spec(self._node())
        with _connect(node.client_port) as sock:
            if self.cluster.password and self.rng.random() < 0.5:
                sock.sendall(resp(b"AUTH", self.cluster.password.encode()))
                _recv_for(sock, self.read_s)
            count = self.rng.randint(1, 8)
            seeds = [self.rng.choice(CLIENT_SEEDS) for _ in range(count)]
            data = b"".join(self.mutator.mutate(seed) for seed in seeds)
            _send_all(sock, self.mutator.pieces(data))
            _recv_for(sock, self.read_s)
        return count

    # -- peer port --------------------------------------------------------------------

    def peer_stranger(self) -> int:
        """Before authentication: garbage, a mutated or partial handshake."""
        node = self.cluster.spec(self._node())
        challenge = encode_frame([FrameKind.CHALLENGE, 2, secrets.token_bytes(NONCE_SIZE)])
        proof = encode_frame([FrameKind.PROOF, 2, node.node_id, secrets.token_bytes(32)])
        choice = self.rng.randrange(4)
        if choice == 0:
            data = self.rng.randbytes(self.rng.randint(1, 600))
        elif choice == 1:
            data = challenge[: self.rng.randint(1, len(challenge) - 1)]
        else:
            data = self.mutator.mutate(challenge + proof if choice == 2 else challenge)
        with _connect(node.peer_port) as sock:
            _send_all(sock, self.mutator.pieces(data))
            _recv_for(sock, self.read_s)
        return 1

    def _authenticate(self, sock: socket.socket, me: int, them: int) -> FrameDecoder:
        """The dialer's side of the handshake as node `me`, then HELLO."""
        hs = Handshake(
            Role.DIALER, self.secret, self.cluster.cluster_id, me,
            secrets.token_bytes(NONCE_SIZE), expected=them,
        )
        decoder = FrameDecoder(1 << 20)
        sock.sendall(b"".join(encode_frame(f) for f in hs.start()))
        sock.settimeout(5.0)
        while not hs.done:
            frame = decoder.next_frame()
            if frame is None:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the node closed the handshake")
                decoder.feed(chunk)
                continue
            sock.sendall(b"".join(encode_frame(f) for f in hs.receive(frame)))
        hello = [FrameKind.HELLO, PROTOCOL_VERSION, self.cluster.cluster_id, me, ""]
        sock.sendall(encode_frame(hello))
        return decoder

    def peer_member(self) -> int:
        """As an authenticated member: harmless frames, then one the node must refuse."""
        them = self._node()
        me = self.rng.choice([n.node_id for n in self.cluster.specs if n.node_id != them])
        frames = [self._harmless() for _ in range(self.rng.randint(0, 3))]
        frames.append(self._refused_frame())
        with _connect(self.cluster.spec(them).peer_port) as sock:
            try:
                self._authenticate(sock, me, them)
            except (OSError, FrameError):
                return 0
            _send_all(sock, self.mutator.pieces(b"".join(frames)))
            _recv_for(sock, self.read_s)
        return len(frames)

    def _harmless(self) -> bytes:
        rid = self.rng.randrange(1 << 40)
        choices: list[list[Any]] = [
            [FrameKind.FORWARD, rid, 2, [b"PING"]],
            [FrameKind.FORWARD, rid, 3, [b"GET", b"fz:k"]],
            [FrameKind.FORWARD_REPLY, rid, self.rng.randbytes(8)],
            [FrameKind.PUBLISH, b"fz:chan", self.rng.randbytes(8)],
        ]
        return encode_frame(self.rng.choice(choices))

    def _refused_frame(self) -> bytes:
        """A mutated frame of any kind that `fuzz_targets`' checks refuse (up to 50 tries;
        else a frame of an unknown kind)."""
        bodies = [s[4 + _first_len(s) :] for s in fuzz_targets.seeds("frame") if len(s) > 60]
        for _ in range(50):
            body = self.mutator.mutate(self.rng.choice(bodies)[4:])
            try:
                frame = msgpack.unpackb(body, raw=False)
            except Exception:
                return _frame_of(body)  # undecodable: refused by the frame decoder
            if not isinstance(frame, list) or not frame:
                return _frame_of(body)
            try:
                fuzz_targets.dispatch_frame(frame, restricted=False)
            except (FrameError, WireFormatError):
                return _frame_of(body)
            # else: a well-formed frame, which a member may send: mutate again
        return encode_frame([99, b"unknown"])

    # -- admin port -------------------------------------------------------------------

    def admin(self) -> int:
        """A mutated HTTP request without the token, or a refused body with it."""
        node = self.cluster.spec(self._node())
        if node.admin_port is None:
            return 0
        if self.rng.random() < 0.5:
            data = self.mutator.mutate(self._http(self._admin_body(), token=None))
        else:
            data = self._http(self._refused_body(), token=self.cluster.admin_token)
        with _connect(node.admin_port) as sock:
            _send_all(sock, self.mutator.pieces(data))
            _recv_for(sock, self.read_s)
        return 1

    def _admin_body(self) -> bytes:
        rules = {"replicas": 3, "location_label": "zone",
                 "ranges": [{"name": "a", "start": "00", "end": "ff", "replicas": 3}]}
        return self.rng.choice([json.dumps(rules).encode(), b'{"reason": "fz"}', b""])

    def _refused_body(self) -> bytes:
        for _ in range(50):
            body = self.mutator.mutate(self._admin_body())
            try:
                rules_from_json(json.loads(body)).validate()
            except (ValueError, SchemaError, InvalidRulesError, RecursionError, AttributeError):
                return body
        return b"{"

    def _http(self, body: bytes, token: str | None) -> bytes:
        paths = [b"POST /v1/placement", b"POST /v1/nodes/99/drain", b"GET /v1/status",
                 b"GET /v1/regions/1", b"GET /v1/events?since=-1&limit=x", b"GET /metrics"]
        line = self.rng.choice(paths) if token is None else paths[self.rng.randrange(2)]
        head = [line + b" HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json",
                b"Content-Length: %d" % len(body), b"Connection: close"]
        if token is not None:
            head.append(b"Authorization: Bearer " + token.encode())
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    # -- the loop ---------------------------------------------------------------------

    def run(self, seconds: float) -> dict[str, int]:
        """Every driver in turn until `seconds` have passed; messages sent per driver."""
        drivers: dict[str, Callable[[], int]] = {
            "client": self.client,
            "peer_stranger": self.peer_stranger,
            "peer_member": self.peer_member,
            "admin": self.admin,
        }
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, driver in drivers.items():
                try:
                    self.sent[name] = self.sent.get(name, 0) + driver()
                except OSError:
                    failed = name + "_connect_failed"
                    self.sent[failed] = self.sent.get(failed, 0) + 1
        return self.sent


def _first_len(data: bytes) -> int:
    """The length of the first frame in `data` (the seeds start with a CHALLENGE)."""
    return int.from_bytes(data[:4], "big")


def _frame_of(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body
