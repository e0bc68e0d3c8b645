"""A throwaway certificate authority and the certificates of a local cluster, for
`cairn dev --tls`, `LocalCluster(tls=True)` and the tests.

Everything is generated with the `cryptography` package (EC P-256 keys, SHA-256
signatures): a self-signed CA (`ca.crt`, `ca.key`), one certificate per node
(`node<id>.crt`, `node<id>.key`: SANs 127.0.0.1, localhost and the URI `cairn://node/<id>`
that names the node for peer mutual TLS, CN `cairn-node-<id>`, for server and client
authentication: a node presents it to clients, to the nodes it dials and to those that
dial it) and one client certificate (`client.crt`, `client.key`, naming no node) for
`redis-cli --cert/--key`, redis-py's `ssl_certfile/ssl_keyfile` and `cairn ctl --cert`.
Keys are written with mode 0600 and never overwritten by accident: `ensure_dev_certs`
keeps the files of an earlier run. This is for development: production certificates come
from the operator's own CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cairn.runtime.peer_auth import NODE_CN_PREFIX, NODE_URI_PREFIX

DEV_VALIDITY = datetime.timedelta(days=365)
"""How long a generated certificate is valid."""
SAN_HOSTS = ("localhost",)
SAN_IPS = ("127.0.0.1",)

PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class DevCerts:
    """Where the generated files are (all PEM)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (clients verify the server with it: `--cacert`)."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's key (signs renewed node certificates)."""
        return self.directory / "ca.key"

    def node_cert(self, node_id: int) -> Path:
        """The certificate node `node_id` serves and dials with (`tls_cert_file`)."""
        return self.directory / f"node{node_id}.crt"

    def node_key(self, node_id: int) -> Path:
        """Its key (`tls_key_file`)."""
        return self.directory / f"node{node_id}.key"

    @property
    def client_cert(self) -> Path:
        """A client certificate signed by the CA (`redis-cli --cert`)."""
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        """Its key (`redis-cli --key`)."""
        return self.directory / "client.key"


def new_key() -> PrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cairn dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str = "Cairn dev CA") -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed CA certificate and its key."""
    key = new_key()
    name = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    common_name: str,
    *,
    server: bool,
    node_id: int | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A certificate signed by the CA: for a server (SANs 127.0.0.1 and localhost, good
    for server and client authentication; with `node_id`, also the SAN URI
    `cairn://node/<id>` that names the node for peer TLS) or for a client."""
    key = new_key()
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in SAN_HOSTS]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SAN_IPS]
        if node_id is not None:
            names.append(x509.UniformResourceIdentifier(f"{NODE_URI_PREFIX}{node_id}"))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a certificate as PEM (readable by all: it is public), atomically."""
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def write_key(path: Path, key: PrivateKey) -> None:
    """Write an unencrypted private key as PEM with mode 0600, atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create a temporary file with `mode` from the start (a key is never readable by
    others, not even for a moment), then rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # whatever the umask took away
    tmp.replace(path)


def load_ca(certs: DevCerts) -> tuple[x509.Certificate, PrivateKey]:
    """The CA of an earlier run."""
    cert = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{certs.ca_key}: not an EC key")
    return cert, key


def issue_node_cert(certs: DevCerts, node_id: int) -> x509.Certificate:
    """A new certificate and key for node `node_id` from the CA (a new serial), written
    over any old ones; the new certificate. SIGHUP makes the node serve it."""
    ca_cert, ca_key = load_ca(certs)
    name = f"{NODE_CN_PREFIX}{node_id}"
    cert, key = issue(ca_cert, ca_key, name, server=True, node_id=node_id)
    write_key(certs.node_key(node_id), key)
    write_cert(certs.node_cert(node_id), cert)
    return cert


def ensure_dev_certs(directory: Path, node_ids: Iterable[int] = (1, 2, 3)) -> DevCerts:
    """The CA, client and node certificates (of `node_ids`) under `directory`: each
    generated when missing and kept afterwards (a restarted dev cluster keeps its CA, so
    clients that trust it keep working; a node added later gets its own from that CA)."""
    certs = DevCerts(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (certs.ca_cert.exists() and certs.ca_key.exists()):
        ca_cert, ca_key = make_ca()
        write_key(certs.ca_key, ca_key)
        write_cert(certs.ca_cert, ca_cert)
        for old in (certs.client_cert, *directory.glob("node*.crt")):
            old.unlink(missing_ok=True)  # signed by a CA that is gone
    if not (certs.client_cert.exists() and certs.client_key.exists()):
        ca_cert, ca_key = load_ca(certs)
        cert, key = issue(ca_cert, ca_key, "cairn client", server=False)
        write_key(certs.client_key, key)
        write_cert(certs.client_cert, cert)
    for node_id in node_ids:
        if not (certs.node_cert(node_id).exists() and certs.node_key(node_id).exists()):
            issue_node_cert(certs, node_id)
    return certs
