"""TLS on the client port and the admin API: config checks, and a real 3-node cluster
(mutual TLS between peers, TLS clients, `tls_auth_clients = "yes"`) with a throwaway CA, reached by
redis-py, redis-cli and HTTPS; certificate reload on SIGHUP; bad files refused at start."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_fixture import running_cluster
from cryptography import x509
from redis.backoff import NoBackoff
from redis.retry import Retry

from cairn.runtime.config import ConfigError, from_mapping
from cairn.runtime.dev_certs import DevCerts, ensure_dev_certs, issue_node_cert
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.tls import ServerTls, TlsConfigError

BASE: dict[str, Any] = {
    "node_id": 1,
    "data_dir": "/tmp/x",
    "client_addr": "127.0.0.1:7001",
    "peers": {"1": "127.0.0.1:17001"},
    "cluster_secret": "a-test-secret-of-enough-bytes",
}


def _tls(certs: DevCerts, **more: Any) -> dict[str, Any]:
    return {
        "tls_addr": "127.0.0.1:8001",
        "tls_cert_file": str(certs.node_cert(1)),
        "tls_key_file": str(certs.node_key(1)),
        "tls_ca_cert_file": str(certs.ca_cert),
        **more,
    }


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """A CA, node and client certificates of their own (not the cluster's)."""
    return ensure_dev_certs(tmp_path_factory.mktemp("certs"))


# -- configuration ----------------------------------------------------------------------


def test_generated_keys_are_private_and_certs_name_loopback(certs: DevCerts) -> None:
    for key in (certs.ca_key, certs.node_key(1), certs.node_key(3), certs.client_key):
        assert key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(certs.node_cert(2).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["cairn://node/2"]


def test_tls_settings_are_read(certs: DevCerts) -> None:
    config = from_mapping(BASE | _tls(certs))
    assert config.tls is not None
    assert config.tls.addr == ("127.0.0.1", 8001)
    assert config.tls.auth_clients == "yes"  # Redis's default
    assert config.client_plaintext and config.client_addr == ("127.0.0.1", 7001)
    assert from_mapping(BASE | _tls(certs, tls_auth_clients=False)).tls.auth_clients == "no"  # type: ignore[union-attr]


def test_client_addr_off_leaves_tls_only(certs: DevCerts) -> None:
    config = from_mapping(BASE | _tls(certs) | {"client_addr": "off"})
    assert not config.client_plaintext
    assert config.client_addr == config.advertised_client_addr == ("127.0.0.1", 8001)
    assert config.admin_addr == ("127.0.0.1", 28001)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_cert_file": "/x.crt"}, "tls_cert_file: set without tls_addr"),
        ({"client_addr": "off"}, 'client_addr: "off" needs tls_addr'),
        ({"tls_addr": "127.0.0.1:8001", "tls_key_file": "k"}, "tls_cert_file: required"),
        ({"tls_addr": "127.0.0.1:8001", "tls_cert_file": "c"}, "tls_key_file: required"),
    ],
)
def test_incomplete_tls_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(BASE | change)


def test_tls_values_are_checked(certs: DevCerts) -> None:
    no_ca = _tls(certs)
    del no_ca["tls_ca_cert_file"]
    with pytest.raises(ConfigError, match="tls_ca_cert_file: required when tls_auth_clients"):
        from_mapping(BASE | no_ca)
    assert from_mapping(BASE | no_ca | {"tls_auth_clients": "no"}).tls is not None
    with pytest.raises(ConfigError, match="tls_auth_clients: expected one of"):
        from_mapping(BASE | _tls(certs, tls_auth_clients="maybe"))
    with pytest.raises(ConfigError, match="tls_addr: must differ from client_addr"):
        from_mapping(BASE | _tls(certs, tls_addr="127.0.0.1:7001"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"tls_key_file": "/nonexistent/node.key"}, "tls_key_file: cannot read"),
        ({"tls_key_file": "CLIENT_KEY"}, "tls_key_file: the key does not match"),
        ({"tls_cert_file": "CA_KEY"}, "tls_cert_file: not a PEM certificate"),
        ({"tls_ca_cert_file": "NODE_KEY"}, "tls_ca_cert_file: .* holds no PEM certificate"),
    ],
)
def test_bad_files_are_named(certs: DevCerts, files: dict[str, str], message: str) -> None:
    named = {"CLIENT_KEY": certs.client_key, "CA_KEY": certs.ca_key, "NODE_KEY": certs.node_key(1)}
    files = {k: str(named.get(v, v)) for k, v in files.items()}
    settings = from_mapping(BASE | _tls(certs, **files)).tls
    assert settings is not None
    with pytest.raises(TlsConfigError, match=message):
        ServerTls.load(settings)


def test_a_bad_key_is_refused_at_start_with_status_2(certs: DevCerts, tmp_path: Path) -> None:
    for key, expected in ((tmp_path / "missing.key", "cannot read"), (certs.client_key, "match")):
        config = tmp_path / "node.toml"
        tls = _tls(certs, tls_key_file=str(key))
        lines = [f"{k} = {json.dumps(v)}" for k, v in (BASE | tls).items() if k != "peers"]
        config.write_text("\n".join(lines) + '\n[peers]\n1 = "127.0.0.1:17001"\n')
        done = subprocess.run(
            [sys.executable, "-m", "cairn", "server", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "tls_key_file" in done.stderr and expected in done.stderr


# -- a real cluster ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("tls-cluster")
    with running_cluster(root, 3, tls=True, tls_auth_clients="yes") as cluster:
        yield cluster


def _tls_client(cluster: LocalCluster, node_id: int, *, cert: bool = True) -> redis.Redis:
    certs = cluster.certs
    mine: dict[str, Any] = {}
    if cert:
        mine = {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
    port = cluster.spec(node_id).tls_port
    return redis.Redis(
        host=HOST,
        port=port,
        ssl=True,
        ssl_ca_certs=str(certs.ca_cert),
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        **mine,
    )


def test_redis_py_over_tls_on_every_node(cluster: LocalCluster) -> None:
    for node_id in (1, 2, 3):  # followers forward over the (mutual TLS) peer port
        with _tls_client(cluster, node_id) as c:
            assert c.set(f"tls:{node_id}", b"v") is True
            assert c.get(f"tls:{node_id}") == b"v"
            assert c.incr("tls:counter") == node_id


def test_a_client_without_a_certificate_is_refused(cluster: LocalCluster) -> None:
    with _tls_client(cluster, 1, cert=False) as c, pytest.raises(redis.ConnectionError):
        c.ping()


def test_redis_cli_tls(cluster: LocalCluster) -> None:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    certs = cluster.certs
    base = ["redis-cli", "--tls", "--cacert", str(certs.ca_cert), "-p"]
    base.append(str(cluster.spec(2).tls_port))
    cert = ["--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    done = subprocess.run([*base, *cert, "PING"], capture_output=True, text=True, timeout=10)
    assert done.stdout == "PONG\n", done.stderr
    done = subprocess.run([*base, *cert, "SET", "tls:cli", "v"], capture_output=True, timeout=10)
    assert done.stdout == b"OK\n", done.stderr
    done = subprocess.run([*base, *cert, "GET", "tls:cli"], capture_output=True, timeout=10)
    assert done.stdout == b"v\n"
    refused = subprocess.run([*base, "PING"], capture_output=True, text=True, timeout=10)
    assert "PONG" not in refused.stdout


def test_plain_text_to_the_tls_port_gets_no_reply(cluster: LocalCluster) -> None:
    with socket.create_connection((HOST, cluster.spec(1).tls_port), timeout=5) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"PONG" not in received
    assert received == b"" or received[0] == 0x15  # nothing, or a TLS alert record


def _admin_get(cluster: LocalCluster, path: str, context: ssl.SSLContext) -> Any:
    url = f"https://{HOST}:{cluster.spec(1).admin_port}{path}"
    bearer = {"Authorization": f"Bearer {cluster.admin_token}"}
    request = urllib.request.Request(url, headers=bearer)
    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
        return json.load(answer)


def test_the_admin_api_serves_https_with_client_certificates(cluster: LocalCluster) -> None:
    certs = cluster.certs
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _admin_get(cluster, "/v1", context)  # no client certificate
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    assert _admin_get(cluster, "/v1", context)["api"] == "v1"
    plain = f"http://{HOST}:{cluster.spec(1).admin_port}/v1"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain, timeout=5)


def _served_serial(cluster: LocalCluster, node_id: int) -> int:
    certs = cluster.certs
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    address = (HOST, cluster.spec(node_id).tls_port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as s,
    ):
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _wait_for_serial(cluster: LocalCluster, node_id: int, serial: int) -> None:
    deadline = time.monotonic() + 10
    while _served_serial(cluster, node_id) != serial:
        assert time.monotonic() < deadline, "the node still serves the old certificate"
        time.sleep(0.1)


def _wait_for_log(cluster: LocalCluster, node_id: int, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in cluster.spec(node_id).log_path.read_text():
        assert time.monotonic() < deadline, f"not logged: {text}"
        time.sleep(0.05)


def test_sighup_reloads_the_certificate(cluster: LocalCluster) -> None:
    certs = cluster.certs
    old, old_2 = _served_serial(cluster, 1), _served_serial(cluster, 2)
    with _tls_client(cluster, 1) as before:
        assert before.ping()
        good_key = certs.node_key(1).read_bytes()
        certs.node_key(1).write_bytes(b"not a key\n")  # a bad reload keeps the old context
        cluster.signal(1, signal.SIGHUP)
        _wait_for_log(cluster, 1, "TLS reload failed, still serving the old certificate")
        assert cluster.running(1) and _served_serial(cluster, 1) == old
        certs.node_key(1).write_bytes(good_key)
        new = issue_node_cert(certs, 1).serial_number
        assert new != old
        cluster.signal(1, signal.SIGHUP)
        _wait_for_serial(cluster, 1, new)
        assert before.ping()  # the connection opened before the reload is untouched
        assert before.get("tls:1") == b"v"
    assert _served_serial(cluster, 2) == old_2  # node 2 was not told to reload
    with _tls_client(cluster, 1) as after:
        assert after.get("tls:2") == b"v"
    log = cluster.spec(1).log_path.read_text()
    assert "TLS reload failed, still serving the old certificate: tls_key_file" in log
    assert f"TLS certificate reloaded: serial {new:x}" in log
    # The peer port's certificate (the same files) is reloaded with it:
    assert "peer TLS reload failed, still using the old certificate: tls_key_file" in log
    assert f"peer TLS certificate reloaded: serial {new:x}" in log
