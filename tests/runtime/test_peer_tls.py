"""Mutual TLS on the peer port (`peer_tls`): certificate naming, config, the transport's
id checks in process, and a real 3-node cluster with peer mTLS (and its cluster secret)
against which the forged-peer attacks of `test_peer_auth` are replayed: a stranger
without a certificate, with one of another CA, with a client certificate of the right CA,
and a node's own certificate claiming another id are all refused. `cairn ctl` against the
mTLS admin API. (redis-py and redis-cli with client certificates: `test_tls`, whose
cluster also runs peer mTLS.)"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cluster_fixture import client, running_cluster
from test_peer_auth import _forged_hello_and, _terms

from cairn.cli.main import main
from cairn.meta.region import Peer
from cairn.raft.types import Message, MessageType
from cairn.runtime.config import ConfigError, PeerTlsSettings, from_mapping
from cairn.runtime.dev_certs import DevCerts, ensure_dev_certs
from cairn.runtime.envelope_codec import encode_envelope
from cairn.runtime.frames import FrameDecoder, FrameKind, encode_frame
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.peer_auth import (
    NONCE_SIZE,
    Handshake,
    Role,
    certificate_node_id,
    node_id_named,
)
from cairn.runtime.tls import PeerTls, TlsConfigError
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.envelope import Envelope, EnvelopeKind

BASE: dict[str, Any] = {
    "node_id": 1,
    "data_dir": "/tmp/x",
    "client_addr": "127.0.0.1:7001",
    "peers": {"1": "127.0.0.1:17001"},
}
KeyPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """A CA, node 1-3 and client certificates of their own (not the cluster's)."""
    return ensure_dev_certs(tmp_path_factory.mktemp("peer-certs"), (1, 2, 3))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """Another CA, with a certificate naming node 2."""
    return ensure_dev_certs(tmp_path_factory.mktemp("other-ca"), (2,))


@pytest.fixture(scope="module")
def foreign(other_ca: DevCerts) -> KeyPair:
    """A certificate naming node 2, signed by another CA."""
    return other_ca.node_cert(2), other_ca.node_key(2)


# -- naming -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uris", "cns", "named"),
    [
        (["cairn://node/7"], [], 7),
        (["cairn://node/7", "cairn://node/7"], ["cairn-node-8"], 7),  # the URI wins
        ([], ["cairn-node-12"], 12),
        (["https://example.com"], ["cairn client"], None),
        (["cairn://node/7", "cairn://node/8"], [], None),  # ambiguous
        (["cairn://node/07"], [], None),
        (["cairn://node/0"], [], None),
        (["cairn://node/99999999"], [], None),
        (["cairn://node/1x"], [], None),
        (["cairn://node/"], ["cairn-node-3"], None),
    ],
)
def test_the_node_id_a_certificate_names(uris: list[str], cns: list[str], named: int) -> None:
    assert node_id_named(uris, cns) == named


def test_the_node_id_of_a_verified_peer_certificate() -> None:
    peercert = {
        "subject": ((("organizationName", "Cairn"),), (("commonName", "cairn-node-3"),)),
        "subjectAltName": (("DNS", "localhost"), ("URI", "cairn://node/4")),
    }
    assert certificate_node_id(peercert) == 4
    assert certificate_node_id({"subject": peercert["subject"]}) == 3
    assert certificate_node_id(None) is None and certificate_node_id({}) is None


# -- configuration ----------------------------------------------------------------------


def test_peer_tls_settings_default_to_the_client_tls_files(certs: DevCerts) -> None:
    tls = {
        "tls_addr": "127.0.0.1:8001",
        "tls_cert_file": str(certs.node_cert(1)),
        "tls_key_file": str(certs.node_key(1)),
        "tls_ca_cert_file": str(certs.ca_cert),
    }
    config = from_mapping(BASE | tls | {"peer_tls": True})  # no cluster secret needed
    assert config.cluster_secret is None
    assert config.peer_tls == PeerTlsSettings(
        certs.node_cert(1),
        certs.node_key(1),
        certs.ca_cert,
        ("tls_cert_file", "tls_key_file", "tls_ca_cert_file"),
    )
    own = {"peer_tls_cert_file": "/p.crt", "peer_tls_key_file": "/p.key"}
    peer = from_mapping(BASE | tls | {"peer_tls": True} | own).peer_tls
    assert peer is not None and peer.cert_file == Path("/p.crt")
    assert peer.keys == ("peer_tls_cert_file", "peer_tls_key_file", "tls_ca_cert_file")
    assert from_mapping(BASE | tls | {"insecure_peer_port": True}).peer_tls is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"peer_tls_cert_file": "/p.crt"}, "peer_tls_cert_file: set without peer_tls"),
        ({"peer_tls": True}, "peer_tls_cert_file: required with peer_tls"),
        (
            {"peer_tls": True, "peer_tls_cert_file": "/c", "peer_tls_key_file": "/k"},
            "peer_tls_ca_cert_file: required",
        ),
        ({"peer_tls": "yes"}, "peer_tls: expected true or false"),
        ({}, "cluster_secret_file: required: .* or turn on peer_tls"),
    ],
)
def test_bad_peer_tls_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(BASE | change)


def test_peer_tls_contradicts_an_insecure_peer_port() -> None:
    files = {f"peer_tls_{k}_file": f"/{k}" for k in ("cert", "key", "ca_cert")}
    with pytest.raises(ConfigError, match="insecure_peer_port: contradicts peer_tls"):
        from_mapping(BASE | files | {"peer_tls": True, "insecure_peer_port": True})


def _settings(certs: DevCerts, node: int) -> PeerTlsSettings:
    return PeerTlsSettings(certs.node_cert(node), certs.node_key(node), certs.ca_cert)


def test_a_node_refuses_a_certificate_that_names_another_node(certs: DevCerts) -> None:
    assert PeerTls.load(_settings(certs, 2), 2).loaded.serial > 0
    with pytest.raises(TlsConfigError, match="names node 2, this is node 1"):
        PeerTls.load(_settings(certs, 2), 1)
    client_only = PeerTlsSettings(certs.client_cert, certs.client_key, certs.ca_cert)
    with pytest.raises(TlsConfigError, match=r"peer_tls_cert_file: .* names no node id"):
        PeerTls.load(client_only, 1)


# -- the transport, in process -----------------------------------------------------------


def test_a_dialer_refuses_a_node_whose_certificate_names_another_id(
    certs: DevCerts, other_ca: DevCerts, caplog: pytest.LogCaptureFixture
) -> None:
    """Nodes 1 and 2 connect over mutual TLS (no cluster secret: TLS alone). Node 1's
    address book sends it to "node 3", actually a node holding node 2's certificate (and
    claiming id 3): node 1 refuses it before the handshake. "Node 4" has a certificate of
    another CA: the TLS handshake fails, and node 1 says so once, not at every retry."""

    def node(
        node_id: int, cert_of: int, peers: dict[int, tuple[str, int]], ca: DevCerts = certs
    ) -> TcpTransport:
        tls = PeerTls.load(_settings(ca, cert_of), cert_of)
        config = TransportConfig(
            cluster_id="c", tls_listener=tls.listener, tls_dialer=tls.dialer, backoff_max=0.2
        )
        return TcpTransport(node_id, ("127.0.0.1", 0), peers, config)

    async def main() -> None:
        two, impostor, stranger = node(2, 2, {}), node(3, 2, {}), node(4, 2, {}, other_ca)
        for t in (two, impostor, stranger):
            await t.start()
        addresses = {2: two.bound_address, 3: impostor.bound_address}
        one = node(1, 1, addresses | {4: stranger.bound_address})
        await one.start()
        try:
            deadline = time.monotonic() + 10
            while not (one.connected(2) and two.connected(1)):
                assert time.monotonic() < deadline, "nodes 1 and 2 did not connect"
                await asyncio.sleep(0.02)
            while one.stats.rejected_peers == 0:
                assert time.monotonic() < deadline, "node 1 never refused the impostor"
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)  # node 1 keeps redialling 3 and 4 (backoff 0.2 s)
            assert not one.connected(3) and not impostor.connected(1)
            assert not one.connected(4) and not stranger.connected(1)
        finally:
            for t in (one, two, impostor, stranger):
                await t.stop()

    with caplog.at_level(logging.WARNING, logger="cairn.transport"):
        asyncio.run(main())
    assert "dialled node 3 but its TLS certificate names node 2" in caplog.text
    assert caplog.text.count("TLS handshake with node 4") == 1


# -- a real cluster with peer mTLS --------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("peer-tls")
    settings = {"peer_handshake_timeout_s": 1.0}
    with running_cluster(root, 3, tls=True, tls_auth_clients="yes", settings=settings) as c:
        yield c


def _tls_peer(cluster: LocalCluster, node: int, cert: KeyPair | None) -> ssl.SSLSocket:
    """A TLS connection to `node`'s peer port with `cert` (None: no client certificate);
    TLS 1.3 reports a refused client certificate only on the first read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cluster.certs.ca_cert)
    if cert is not None:
        context.load_cert_chain(*cert)
    raw = socket.create_connection((HOST, cluster.spec(node).peer_port), timeout=5)
    return context.wrap_socket(raw)


def _node_cert(cluster: LocalCluster, node: int) -> KeyPair:
    return cluster.certs.node_cert(node), cluster.certs.node_key(node)


def _drain(sock: socket.socket, limit: float = 5.0) -> bytes:
    """What the node sends until it closes the connection (a TLS alert ends it too)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return data


def _handshake(sock: socket.socket, cluster: LocalCluster, as_node: int, expected: int) -> bool:
    """The peer handshake as `as_node`, knowing the secret: whether the node completed
    it (proved itself to us, so it accepted our proof), or closed the connection."""
    secret = cluster.secret_path.read_bytes().strip()
    nonce = os.urandom(NONCE_SIZE)
    hs = Handshake(Role.DIALER, secret, cluster.cluster_id, as_node, nonce, expected=expected)
    sock.sendall(b"".join(encode_frame(f) for f in hs.start()))
    decoder = FrameDecoder(1 << 20)
    sock.settimeout(5)
    while not hs.done:
        try:
            data = sock.recv(4096)
        except (ssl.SSLError, ConnectionResetError):
            return False
        if not data:
            return False
        decoder.feed(data)
        while not hs.done and (frame := decoder.next_frame()) is not None:
            sock.sendall(b"".join(encode_frame(f) for f in hs.receive(frame)))
    return True


def _log(cluster: LocalCluster, node: int) -> str:
    return cluster.spec(node).log_path.read_text()


def test_writes_replicate_and_forward_over_mutual_tls(cluster: LocalCluster) -> None:
    for node in (1, 2, 3):  # two of the three forward to the leader over the peer port
        assert client(cluster, node).set(f"mtls:{node}", node)
    for node in (1, 2, 3):
        assert client(cluster, node).mget("mtls:1", "mtls:2", "mtls:3") == [b"1", b"2", b"3"]
    logs = [_log(cluster, n) for n in (1, 2, 3)]
    assert not any("closing the peer connection" in text for text in logs)


def test_the_peer_port_speaks_only_tls(cluster: LocalCluster) -> None:
    """Plain TCP gets no CHALLENGE: the node waits for a TLS hello, and closes the
    connection after the handshake deadline (1 s here)."""
    start = time.monotonic()
    with socket.create_connection((HOST, cluster.spec(1).peer_port), timeout=5) as sock:
        assert _drain(sock) == b""  # no CHALLENGE
    assert 0.8 < time.monotonic() - start < 4


@pytest.mark.parametrize("who", ["no certificate", "another CA", "a client certificate"])
def test_a_peer_without_a_node_certificate_is_refused(
    cluster: LocalCluster, foreign: KeyPair, who: str
) -> None:
    cert = {
        "no certificate": None,
        "another CA": foreign,
        "a client certificate": (cluster.certs.client_cert, cluster.certs.client_key),
    }[who]
    try:
        sock = _tls_peer(cluster, 1, cert)
    except (ssl.SSLError, ConnectionResetError):
        return  # refused during the TLS handshake itself
    with sock:
        assert not _handshake(sock, cluster, 2, 1)  # not even a CHALLENGE
    if who == "a client certificate":  # the right CA, but no node id
        assert "its TLS certificate names no node id" in _log(cluster, 1)


def test_a_node_certificate_cannot_claim_another_node(cluster: LocalCluster) -> None:
    with _tls_peer(cluster, 3, _node_cert(cluster, 2)) as sock:
        assert _handshake(sock, cluster, 2, 3)  # as itself: accepted (no HELLO: unused)
    with _tls_peer(cluster, 3, _node_cert(cluster, 2)) as sock:
        assert not _handshake(sock, cluster, 9, 3)
    assert "peer claims node 9 but its certificate names node 2" in _log(cluster, 3)


def test_the_forged_peer_attacks_fail(cluster: LocalCluster, foreign: KeyPair) -> None:
    """A FORWARD FLUSHALL to the leader and a heartbeat raising the term, from a plain
    TCP stranger, over TLS with a client certificate or another CA's node certificate,
    and from node 2's certificate claiming node 9 (with the secret): no effect."""
    c = client(cluster, 1)
    c.set("keep", "me")
    leader = cluster.wait_for_leader()
    before = _terms(cluster, 2)
    beat = Message(MessageType.HEARTBEAT, to=1002, frm=1001, term=1_000_001)
    env = Envelope(EnvelopeKind.RAFT, 1, Peer(1001, 1), Peer(1002, 2), message=beat)
    flush = _forged_hello_and([[FrameKind.FORWARD, 1, 2, [b"FLUSHALL"]]])
    bump = _forged_hello_and([[FrameKind.ENVELOPES, [encode_envelope(env)]]])
    client_cert = (cluster.certs.client_cert, cluster.certs.client_key)
    for target, payload in ((leader, flush), (2, bump)):
        with socket.create_connection((HOST, cluster.spec(target).peer_port)) as plain:
            plain.sendall(payload)
            answer = _drain(plain)
            assert answer == b"" or answer[0] == 0x15  # nothing, or a TLS alert record
        for cert in (client_cert, foreign):
            try:
                sock = _tls_peer(cluster, target, cert)
            except (ssl.SSLError, ConnectionResetError):
                continue
            with sock:
                try:
                    sock.sendall(payload)
                except (ssl.SSLError, OSError):
                    continue
                assert _drain(sock) == b""
        with _tls_peer(cluster, target, _node_cert(cluster, 2 if target != 2 else 3)) as sock:
            assert not _handshake(sock, cluster, 9, target)  # closed before any HELLO
    time.sleep(0.2)
    assert c.get("keep") == b"me"
    after = _terms(cluster, 2)
    assert after == before and max(after.values()) < 1000
    assert all(cluster.running(n) for n in (1, 2, 3))
    assert not any("Traceback" in _log(cluster, n) for n in (1, 2, 3))


def test_silent_or_flooding_tls_peers_are_cut_off(cluster: LocalCluster) -> None:
    start = time.monotonic()
    with _tls_peer(cluster, 2, _node_cert(cluster, 3)) as sock:
        challenge = _drain(sock)  # the CHALLENGE, then nothing until the deadline
    assert 0 < len(challenge) < 100 and 0.8 < time.monotonic() - start < 4
    start = time.monotonic()
    with _tls_peer(cluster, 2, _node_cert(cluster, 3)) as sock:
        sock.sendall((256 << 20).to_bytes(4, "big") + b"x" * 60000)
        _drain(sock)
    assert time.monotonic() - start < 0.8  # closed at once, not at the deadline


def _ctl(cluster: LocalCluster, *options: str, env: dict[str, str] | None = None) -> Any:
    endpoints = ",".join(f"{HOST}:{n.admin_port}" for n in cluster.specs)  # tried in turn
    args = ["ctl", "-e", endpoints, "--token", str(cluster.admin_token), *options]
    return CliRunner().invoke(main, [*args, "--json", "status"], env=env)


def test_cairn_ctl_needs_a_client_certificate_for_an_mtls_admin_api(
    cluster: LocalCluster,
) -> None:
    certs = cluster.certs
    mtls = ["--cacert", str(certs.ca_cert), "--cert", str(certs.client_cert)]
    result = _ctl(cluster, *mtls, "--key", str(certs.client_key))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["nodes"]["total"] == 3
    env = {
        "CAIRN_CACERT": str(certs.ca_cert),
        "CAIRN_CERT": str(certs.client_cert),
        "CAIRN_KEY": str(certs.client_key),
    }
    assert _ctl(cluster, env=env).exit_code == 0
    refused = _ctl(cluster, "--cacert", str(certs.ca_cert))  # no client certificate
    assert refused.exit_code == 2 and "no admin endpoint answered" in refused.output
    no_key = _ctl(cluster, *mtls)
    assert no_key.exit_code == 2 and "needs its key" in no_key.output
