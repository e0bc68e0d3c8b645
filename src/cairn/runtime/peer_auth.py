"""The peer handshake: mutual HMAC challenge-response over a shared cluster secret (sans-I/O).

Theory of operation. Every node of a cluster holds the same secret (`cluster_secret` or
`cluster_secret_file`). Before a peer connection carries anything else, each side proves
that it knows the secret without sending it:

1. On connect both sides send a CHALLENGE, `[kind, version, nonce]`, the nonce being 32
   fresh random bytes. Nothing else about the node is revealed to a stranger.
2. The dialer, once it has the acceptor's nonce, sends its PROOF,
   `[kind, sender id, receiver id, mac]`, the receiver being the node it meant to dial
   (0 when it dials a `join` address and cannot know whom it reaches).
3. The acceptor checks that proof: the receiver is itself (or 0: a join), the sender is
   a plausible node id other than its own, the mac is right (`hmac.compare_digest`).
   Then it answers with its own PROOF, addressed to the dialer's id, and is done.
4. The dialer checks the acceptor's proof (sender: the node it dialled; receiver: itself)
   and is done.

A mac is HMAC-SHA256 under the secret over (a label and version, the sender's role,
the cluster id, the sender's and the receiver's node ids, the dialer's nonce, the
acceptor's nonce). Fresh nonces on both sides make a recorded proof worthless on another
connection (replay); the role and both nonces in a fixed order make a proof useless
when reflected back at its sender; naming the receiver makes a proof that a node gave
one peer useless against another (relay through a node that squats a stopped peer's
address). What it does not do: encrypt or authenticate the frames that follow, so an
attacker who can rewrite traffic on the path between two nodes can still hijack an
authenticated connection (see docs/security.md: use a private network or a tunnel).

The acceptor decides what an authenticated node may do: a node it knows (configured,
or learned from the placement group's membership) is a full peer; a node it does not
know, or one that dialled a `join` address, only `restricted`: it may announce itself
(a join), nothing else.

`Handshake` is the state machine of one side: `start()` gives the frames to send first,
`receive(frame)` consumes one handshake frame and gives the frames to send in reply,
`HandshakeError` says the other side failed (the connection is then closed).

With mutual TLS on the peer port (`peer_tls`, `cairn.runtime.tls.PeerTls`), each node's
certificate names its node id (`certificate_node_id`: a SAN URI `cairn://node/<id>`, or
a subject CN `cairn-node-<id>`), and the transport tells each side the id the other's
certificate names (`Handshake.certified`): a PROOF whose sender is another id is refused
before its mac is even checked, so a node's certificate cannot be used to pose as another
node. The HMAC exchange still runs (with the cluster secret when one is configured: both
must pass; with an empty secret when TLS alone authenticates).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from cairn.raft.types import NodeId
from cairn.runtime.frames import FrameError, FrameKind
from cairn.runtime.region_layout import PEER_ID_STRIDE

HANDSHAKE_VERSION = 2
"""The peer protocol version the handshake announces (1 was the unauthenticated HELLO)."""
NONCE_SIZE = 32
MAC_SIZE = hashlib.sha256().digest_size
HANDSHAKE_MAX_FRAME = 256
"""The largest frame accepted before authentication (a CHALLENGE or PROOF is < 80 bytes)."""
HANDSHAKE_MAX_BUFFER = 4096
"""The most bytes an unauthenticated connection may leave buffered after a read."""
HANDSHAKE_TIMEOUT = 5.0
"""Seconds a connection has to finish the handshake (`peer_handshake_timeout_s`)."""
MIN_SECRET_BYTES = 16
_LABEL = b"cairn-peer-auth"
NODE_URI_PREFIX = "cairn://node/"
"""A node certificate names its node id as a SAN URI `cairn://node/<id>` ..."""
NODE_CN_PREFIX = "cairn-node-"
"""... or as its subject common name `cairn-node-<id>` (used when it has no such URI)."""
_ID_DIGITS = re.compile(r"[1-9][0-9]{0,5}")


class Role(enum.Enum):
    """Which end of the TCP connection a side is."""

    DIALER = "dialer"
    ACCEPTOR = "acceptor"


class HandshakeError(FrameError):
    """The other side failed the handshake (or broke its protocol); close the connection."""


class _State(enum.Enum):
    WAIT_CHALLENGE = "wait-challenge"
    WAIT_PROOF = "wait-proof"
    DONE = "done"


def proof_mac(
    secret: bytes,
    role: Role,
    cluster_id: str,
    sender: NodeId,
    receiver: NodeId,
    dialer_nonce: bytes,
    acceptor_nonce: bytes,
) -> bytes:
    """The mac by which `sender` (at `role`) proves it knows `secret` on one connection."""
    fields = [_LABEL, HANDSHAKE_VERSION, role.value, cluster_id, sender, receiver]
    message = msgpack.packb([*fields, dialer_nonce, acceptor_nonce], use_bin_type=True)
    return hmac.new(secret, message, hashlib.sha256).digest()


def plausible_node_id(value: Any) -> bool:
    """Whether `value` can be a node id at all (a positive int below `PEER_ID_STRIDE`)."""
    return type(value) is int and 0 < value < PEER_ID_STRIDE


def node_id_named(uris: list[str], common_names: list[str]) -> NodeId | None:
    """The node id a certificate names: its `cairn://node/<id>` SAN URIs, or when it has
    none, its `cairn-node-<id>` common names. None when it names no node id, a malformed
    or impossible one, or several (such a certificate identifies no node)."""
    named = [u for u in uris if u.startswith(NODE_URI_PREFIX)]
    prefix = NODE_URI_PREFIX
    if not named:
        named = [c for c in common_names if c.startswith(NODE_CN_PREFIX)]
        prefix = NODE_CN_PREFIX
    ids = set()
    for name in named:
        digits = name[len(prefix) :]
        if not _ID_DIGITS.fullmatch(digits) or not plausible_node_id(int(digits)):
            return None
        ids.add(int(digits))
    return ids.pop() if len(ids) == 1 else None


def certificate_node_id(peercert: dict[str, Any] | None) -> NodeId | None:
    """The node id named by a verified peer certificate as `ssl.SSLObject.getpeercert()`
    gives it (see `node_id_named`); None without a certificate or a single node id."""
    if not peercert:
        return None
    uris = [v for k, v in peercert.get("subjectAltName", ()) if k == "URI"]
    cns = [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return node_id_named([str(u) for u in uris], [str(c) for c in cns])


@dataclass(frozen=True, slots=True)
class Challenge:
    """A CHALLENGE frame's content."""

    version: int
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Proof:
    """A PROOF frame's content."""

    sender: NodeId
    receiver: NodeId
    mac: bytes


def parse_challenge(frame: list[Any]) -> Challenge:
    """The CHALLENGE in `frame`, or `HandshakeError`."""
    if len(frame) != 3 or frame[0] != FrameKind.CHALLENGE:
        raise HandshakeError("expected a CHALLENGE frame")
    _, version, nonce = frame
    if type(version) is not int:
        raise HandshakeError("malformed CHALLENGE frame")
    if version != HANDSHAKE_VERSION:
        raise HandshakeError(f"peer speaks protocol {version}, we speak {HANDSHAKE_VERSION}")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise HandshakeError("a CHALLENGE nonce must be 32 bytes")
    return Challenge(version, nonce)


def parse_proof(frame: list[Any]) -> Proof:
    """The PROOF in `frame`, or `HandshakeError`."""
    if len(frame) != 4 or frame[0] != FrameKind.PROOF:
        raise HandshakeError("expected a PROOF frame")
    _, sender, receiver, mac = frame
    if not plausible_node_id(sender):
        raise HandshakeError(f"peer claims an impossible node id {sender!r:.20}")
    if type(receiver) is not int or not 0 <= receiver < PEER_ID_STRIDE:
        raise HandshakeError("malformed PROOF frame")
    if not isinstance(mac, bytes) or len(mac) != MAC_SIZE:
        raise HandshakeError("a PROOF mac must be 32 bytes")
    return Proof(sender, receiver, mac)


class Handshake:
    """One side of the handshake of one connection (see the module docstring)."""

    def __init__(
        self,
        role: Role,
        secret: bytes,
        cluster_id: str,
        node_id: NodeId,
        nonce: bytes,
        *,
        expected: NodeId | None = None,
        knows: Callable[[NodeId], bool] = lambda node: False,
    ) -> None:
        """`nonce`: 32 fresh random bytes; `expected`: the node a dialer meant to reach
        (None: a join address); `knows`: whether the acceptor knows a node id."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError("the nonce must be 32 bytes")
        self.role = role
        self.secret = secret
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.nonce = nonce
        self.expected = expected
        self.knows = knows
        self.state = _State.WAIT_CHALLENGE
        self.peer_nonce = b""
        self.peer: NodeId | None = None
        """The authenticated peer's node id, once `done`."""
        self.certified: NodeId | None = None
        """The node id the other side's TLS certificate names (set by the transport when
        the peer port speaks mutual TLS): the only id it may claim. None: no TLS."""
        self.restricted = False
        """Authenticated, but not a node this side knows (or a join): it may only announce
        itself (see `cairn.runtime.frame_checks.check_join_peers`)."""

    @property
    def done(self) -> bool:
        """Whether the other side is authenticated."""
        return self.state is _State.DONE

    def start(self) -> list[list[Any]]:
        """The frames to send as soon as the connection is up."""
        return [[FrameKind.CHALLENGE, HANDSHAKE_VERSION, self.nonce]]

    def receive(self, frame: list[Any]) -> list[list[Any]]:
        """Consume one frame of the handshake; the frames to send in reply."""
        if self.state is _State.WAIT_CHALLENGE:
            return self._on_challenge(parse_challenge(frame))
        if self.state is _State.WAIT_PROOF:
            return self._on_proof(parse_proof(frame))
        raise HandshakeError("the handshake is already over")

    def _on_challenge(self, challenge: Challenge) -> list[list[Any]]:
        if hmac.compare_digest(challenge.nonce, self.nonce):
            raise HandshakeError("peer echoed our own nonce (a reflection)")
        self.peer_nonce = challenge.nonce
        self.state = _State.WAIT_PROOF
        if self.role is Role.DIALER:
            return [self._proof(self.expected or 0)]
        return []

    def _on_proof(self, proof: Proof) -> list[list[Any]]:
        if proof.sender == self.node_id:
            raise HandshakeError("peer claims our own node id")
        if self.certified is not None and proof.sender != self.certified:
            raise HandshakeError(
                f"peer claims node {proof.sender} but its certificate names node {self.certified}"
            )
        if self.role is Role.DIALER:
            return self._on_acceptor_proof(proof)
        if proof.receiver not in (0, self.node_id):
            raise HandshakeError(f"proof meant for node {proof.receiver}, not for us")
        self._verify(proof, Role.DIALER)
        self.restricted = proof.receiver == 0 or not self.knows(proof.sender)
        self._finish(proof.sender)
        return [self._proof(proof.sender)]

    def _on_acceptor_proof(self, proof: Proof) -> list[list[Any]]:
        if self.expected is not None and proof.sender != self.expected:
            raise HandshakeError(f"dialled node {self.expected} but node {proof.sender} answered")
        if proof.receiver != self.node_id:
            raise HandshakeError(f"proof meant for node {proof.receiver}, not for us")
        self._verify(proof, Role.ACCEPTOR)  # the node at a configured address: trusted
        self._finish(proof.sender)
        return []

    def _verify(self, proof: Proof, role: Role) -> None:
        want = self._mac(role, proof.sender, proof.receiver)
        if not hmac.compare_digest(want, proof.mac):
            raise HandshakeError(
                f"node {proof.sender} failed authentication (wrong cluster secret or cluster id)"
            )

    def _finish(self, peer: NodeId) -> None:
        self.peer = peer
        self.state = _State.DONE

    def _proof(self, receiver: NodeId) -> list[Any]:
        mac = self._mac(self.role, self.node_id, receiver)
        return [FrameKind.PROOF, self.node_id, receiver, mac]

    def _mac(self, role: Role, sender: NodeId, receiver: NodeId) -> bytes:
        if self.role is Role.DIALER:
            dialer_nonce, acceptor_nonce = self.nonce, self.peer_nonce
        else:
            dialer_nonce, acceptor_nonce = self.peer_nonce, self.nonce
        return proof_mac(
            self.secret, role, self.cluster_id, sender, receiver, dialer_nonce, acceptor_nonce
        )
