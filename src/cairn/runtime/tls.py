"""TLS for the client port, the admin API and the peer port: `ssl.SSLContext` objects
built from a node's `TlsSettings` (and `PeerTlsSettings`), reloaded from the same files on
SIGHUP.

Theory of operation. Both listeners (the Redis-protocol TLS port and the admin API's
HTTPS) are given one `ServerTls.context`, a `_SwappableContext`: asyncio (and uvloop)
call `wrap_bio` on the listener's context once per accepted connection, and ours hands
that call to the context currently loaded. `reload` builds a complete new context from
the files first, and swaps it in only when every check passed, so a connection accepted
after a reload uses the new certificate, connections already open keep the one they
were accepted with, and a bad file leaves the node serving the old certificate (with an
error in the log) instead of serving nothing.

Every file is checked before it is used, with a message that names the config key: a
missing or unreadable file, a certificate or key that does not parse, a key that does not
belong to the certificate, a CA file with no certificate. `cairn server` turns these into
its usual refusal to start (exit status 2).

The peer port (`PeerTls`, with `peer_tls = true`) has two contexts, both swappable the
same way: the listener's, which requires a client certificate signed by the CA, and the
dialer's, which presents the node's certificate and requires the other node's. Host names
are not checked (nodes dial addresses, and a certificate need not name them): what
identifies a node is the node id its certificate names (`cairn://node/<id>`, see
`cairn.runtime.peer_auth.certificate_node_id`), checked by the transport against the id
the peer claims. A node refuses to start when its own certificate names another node.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from cairn.runtime.config import ConfigError, PeerTlsSettings, TlsSettings
from cairn.runtime.peer_auth import NODE_URI_PREFIX, node_id_named

log = logging.getLogger("cairn.tls")

MIN_VERSION = ssl.TLSVersion.TLSv1_2
"""Older protocol versions are refused (as Redis's default `tls-protocols`)."""
MAX_PEM_BYTES = 1 << 20
"""A certificate, key or CA file larger than this is refused (it is not one)."""

_VERIFY_MODES = {
    "yes": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "no": ssl.CERT_NONE,
}


class TlsConfigError(ConfigError):
    """A TLS file is missing, unreadable, malformed or does not fit its partner."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """One successful load of the files: the context and what it serves."""

    context: ssl.SSLContext
    serial: int
    not_after: datetime.datetime
    cert: x509.Certificate


class _SwappableContext(ssl.SSLContext):
    """The listeners' context: every new connection is wrapped by the context currently
    loaded (`ServerTls.reload` replaces it), never by this one."""

    current: ssl.SSLContext

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.current.wrap_socket(*args, **kwargs)


class ServerTls:
    """The TLS context of one node (client TLS port and admin HTTPS), reloadable."""

    def __init__(self, settings: TlsSettings, loaded: Loaded) -> None:
        self.settings = settings
        self.loaded = loaded
        self.context = _SwappableContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.current = loaded.context

    @classmethod
    def load(cls, settings: TlsSettings) -> ServerTls:
        """Read and check every file; `TlsConfigError` naming the key if one is bad."""
        return cls(settings, build_context(settings))

    def reload(self) -> bool:
        """Read the files again (SIGHUP): new connections use the new certificate, open
        ones are untouched. On any error the old context stays; False."""
        try:
            loaded = build_context(self.settings)
        except TlsConfigError as exc:
            log.error("TLS reload failed, still serving the old certificate: %s", exc)
            return False
        self.loaded = loaded
        self.context.current = loaded.context
        log.info(
            "TLS certificate reloaded: serial %x, valid until %s",
            loaded.serial,
            loaded.not_after.isoformat(),
        )
        return True


def build_context(settings: TlsSettings) -> Loaded:
    """A server context from the settings' files, every file checked first."""
    names = ("tls_cert_file", "tls_key_file", "tls_ca_cert_file")
    return _build(
        ssl.PROTOCOL_TLS_SERVER,
        names,
        (settings.cert_file, settings.key_file, settings.ca_cert_file),
        _VERIFY_MODES[settings.auth_clients],
    )


def _build(
    protocol: ssl._SSLMethod,
    names: tuple[str, str, str],
    files: tuple[Path, Path, Path | None],
    verify_mode: ssl.VerifyMode,
) -> Loaded:
    """A context (server or client) presenting the certificate `files[0]` with its key
    `files[1]`, verifying the other side against the CA `files[2]`; `names` are the
    config keys of the three files, for the messages."""
    cert_key, key_key, ca_key = names
    cert_file, key_file, ca_file = files
    cert = _certificate(cert_key, _read(cert_key, cert_file))
    _check_key(key_key, cert_key, _read(key_key, key_file), cert)
    context = ssl.SSLContext(protocol)
    context.minimum_version = MIN_VERSION
    if protocol == ssl.PROTOCOL_TLS_CLIENT:
        context.check_hostname = False  # a node is identified by the id its certificate names
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"{cert_key}: cannot use it with {key_key}: {exc}") from None
    if ca_file is not None:
        ca_pem = _read(ca_key, ca_file)
        try:
            x509.load_pem_x509_certificates(ca_pem)
            context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        except (ValueError, ssl.SSLError) as exc:
            raise TlsConfigError(f"{ca_key}: {ca_file} holds no PEM certificate: {exc}") from None
    context.verify_mode = verify_mode
    not_after = cert.not_valid_after_utc
    if not_after < datetime.datetime.now(datetime.UTC):
        log.warning("the TLS certificate %s expired on %s", cert_file, not_after)
    return Loaded(context, cert.serial_number, not_after, cert)


def _read(key: str, path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise TlsConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_PEM_BYTES:
        raise TlsConfigError(f"{key}: {path} is over {MAX_PEM_BYTES} bytes")
    if not data.strip():
        raise TlsConfigError(f"{key}: {path} is empty")
    return data


def _certificate(name: str, pem: bytes) -> x509.Certificate:
    """The first (leaf) certificate of a PEM chain (from the config key `name`)."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsConfigError(f"{name}: not a PEM certificate: {exc}") from None
    return chain[0]


def _check_key(name: str, cert_name: str, pem: bytes, cert: x509.Certificate) -> None:
    """The key parses, needs no passphrase, and is the certificate's own."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TlsConfigError(f"{name}: the key is encrypted (give it unencrypted)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsConfigError(f"{name}: not a PEM private key: {exc}") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        mismatch = f"the key does not match the certificate in {cert_name}"
        raise TlsConfigError(f"{name}: {mismatch}")


def node_id_of(cert: x509.Certificate) -> int | None:
    """The node id a certificate names (`cairn.runtime.peer_auth.node_id_named`)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [str(u) for u in sans.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        uris = []
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return node_id_named(uris, cns)


class PeerTls:
    """The peer port's two contexts (`listener`, `dialer`) of node `node_id`, reloadable
    like `ServerTls` (the same files may serve both)."""

    def __init__(self, settings: PeerTlsSettings, node_id: int) -> None:
        self.settings = settings
        self.node_id = node_id
        server, client = self._build()
        self.loaded = server
        self.listener = _SwappableContext(ssl.PROTOCOL_TLS_SERVER)
        self.listener.current = server.context
        self.dialer = _SwappableContext(ssl.PROTOCOL_TLS_CLIENT)
        self.dialer.check_hostname = False
        self.dialer.verify_mode = ssl.CERT_REQUIRED
        self.dialer.current = client.context

    @classmethod
    def load(cls, settings: PeerTlsSettings, node_id: int) -> PeerTls:
        """Read and check every file (and that the certificate names `node_id`)."""
        return cls(settings, node_id)

    def _build(self) -> tuple[Loaded, Loaded]:
        s = self.settings
        files = (s.cert_file, s.key_file, s.ca_cert_file)
        server = _build(ssl.PROTOCOL_TLS_SERVER, s.keys, files, ssl.CERT_REQUIRED)
        named = node_id_of(server.cert)
        if named != self.node_id:
            what = f"names node {named}" if named is not None else "names no node id"
            raise TlsConfigError(
                f"{s.keys[0]}: {s.cert_file} {what}, this is node {self.node_id} (peer TLS "
                f"needs a SAN URI {NODE_URI_PREFIX}{self.node_id}, see docs/security.md)"
            )
        client = _build(ssl.PROTOCOL_TLS_CLIENT, s.keys, files, ssl.CERT_REQUIRED)
        return server, client

    def reload(self) -> bool:
        """Read the files again (SIGHUP); on any error the old contexts stay: False."""
        try:
            server, client = self._build()
        except TlsConfigError as exc:
            log.error("peer TLS reload failed, still using the old certificate: %s", exc)
            return False
        self.loaded = server
        self.listener.current = server.context
        self.dialer.current = client.context
        log.info("peer TLS certificate reloaded: serial %x", server.serial)
        return True
