"""TLS for the client port and the admin API: `ssl.SSLContext` objects built from a
node's `TlsSettings`, and reloaded from the same files on SIGHUP.

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

from cairn.runtime.config import ConfigError, TlsSettings

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
    cert_pem = _read("tls_cert_file", settings.cert_file)
    key_pem = _read("tls_key_file", settings.key_file)
    cert = _certificate(cert_pem)
    _check_key(key_pem, cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"tls_cert_file: cannot use it with tls_key_file: {exc}") from None
    if settings.ca_cert_file is not None:
        ca_pem = _read("tls_ca_cert_file", settings.ca_cert_file)
        try:
            x509.load_pem_x509_certificates(ca_pem)
            context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        except (ValueError, ssl.SSLError) as exc:
            raise TlsConfigError(
                f"tls_ca_cert_file: {settings.ca_cert_file} holds no PEM certificate: {exc}"
            ) from None
    context.verify_mode = _VERIFY_MODES[settings.auth_clients]
    not_after = cert.not_valid_after_utc
    if not_after < datetime.datetime.now(datetime.UTC):
        log.warning("the TLS certificate %s expired on %s", settings.cert_file, not_after)
    return Loaded(context, cert.serial_number, not_after)


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


def _certificate(pem: bytes) -> x509.Certificate:
    """The first (leaf) certificate of a PEM chain."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsConfigError(f"tls_cert_file: not a PEM certificate: {exc}") from None
    return chain[0]


def _check_key(pem: bytes, cert: x509.Certificate) -> None:
    """The key parses, needs no passphrase, and is the certificate's own."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TlsConfigError("tls_key_file: the key is encrypted (give it unencrypted)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsConfigError(f"tls_key_file: not a PEM private key: {exc}") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        mismatch = "the key does not match the certificate in tls_cert_file"
        raise TlsConfigError(f"tls_key_file: {mismatch}")
