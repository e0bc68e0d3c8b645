"""Who may use the admin API, and how: tokens, roles, and the browser defences.

Theory of operation. Every request passes `Access.check` before its handler, in this order:

1. an `Origin` header that is present and not the API's own origin (`scheme://Host`) is
   403: a web page of another site, or a sandboxed (`null`) one, gets nothing;
2. a state change (any method but GET and HEAD) must declare `Content-Type:
   application/json`, else 415: an HTML form, the one cross-origin request a browser sends
   without asking first, can only send text/plain, urlencoded or multipart bodies;
3. `Authorization: Bearer <token>` must name a token of the node's `TokenStore`, else 401
   (`GET /metrics` is exempt when `metrics_public` is set, for scrapers without a token);
4. a state change needs a token of role `admin`, else 403.

No state changes through GET: the router only routes POST to the actions. What the
handler then did is logged for every state change, with the token's id and name (never
the token) and the client's address, and so is every refused state change.

`is_loopback` decides the protected mode: an admin API bound anywhere but loopback with no
token configured does not start (`AdminStartError`), because nobody could use it but
somebody could mistake it for open.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from cairn.admin.source import (
    ForbiddenError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from cairn.runtime.admin_tokens import Role, TokenEntry, TokenFileError, TokenStore

log = logging.getLogger("cairn.admin")

SAFE_METHODS = frozenset({"GET", "HEAD"})
METRICS_PATH = "/metrics"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOLDER_KEY = web.RequestKey("holder", TokenEntry)


class AdminStartError(Exception):
    """The admin API must not start as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Access:
    """The node's tokens and whether `/metrics` is readable without one."""

    tokens: TokenStore
    metrics_public: bool = False

    @classmethod
    def open(cls, tokens_file: Path | None, metrics_public: bool = False) -> Access:
        """The access of a node whose config names `tokens_file` (`AdminStartError` if the
        file cannot be used)."""
        try:
            return cls(TokenStore(tokens_file), metrics_public)
        except TokenFileError as exc:
            raise AdminStartError(str(exc)) from None

    def check_start(self, host: str, port: int) -> None:
        """The protected mode (module doc); a warning when nothing could be asked."""
        if len(self.tokens):
            return
        if not is_loopback(host):
            raise AdminStartError(
                f"the admin API would listen on {host}:{port}, which is not loopback, with no "
                "admin token configured: create one with 'cairn ctl token create --role admin "
                "--file PATH' and set admin_tokens_file = PATH (copied to every node), bind "
                'admin_addr to 127.0.0.1, or set admin_addr = "off"'
            )
        log.warning(
            "no admin token configured: the admin API on %s:%d refuses every request "
            "(see docs/admin.md: admin_tokens_file)",
            host,
            port,
        )

    def check(self, request: web.Request) -> TokenEntry | None:
        """The token's entry if the request may proceed (None: a public `/metrics`), or
        the `AdminError` that refuses it (module doc). The entry is kept with the request
        for `log_change`."""
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, request.scheme, request.host):
            raise ForbiddenError(f"cross-origin requests are refused (Origin: {origin[:200]})")
        changes = request.method not in SAFE_METHODS
        if changes and not _declares_json(request):
            raise UnsupportedMediaTypeError(
                f"{request.method} needs 'Content-Type: application/json'"
            )
        if not changes and self.metrics_public and request.path == METRICS_PATH:
            return None
        holder = self._holder(request)
        request[_HOLDER_KEY] = holder  # for the log line of a state change
        if changes and holder.role is not Role.ADMIN:
            raise ForbiddenError(
                f"token {holder.id} is read-only: {request.method} {request.path} "
                "needs a token of role admin"
            )
        return holder

    def _holder(self, request: web.Request) -> TokenEntry:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("this admin API needs 'Authorization: Bearer <token>'")
        holder = self.tokens.authenticate(token.strip())
        if holder is None:
            raise UnauthorizedError("the admin token is unknown or revoked")
        return holder


def _declares_json(request: web.Request) -> bool:
    return "Content-Type" in request.headers and request.content_type == "application/json"


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether the `Origin` header names this API (`scheme://host`, default ports equal)."""
    own = _origin_key(f"{scheme}://{host}")
    return own is not None and _origin_key(origin) == own


def _origin_key(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`); names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def log_change(request: web.Request, status: int) -> None:
    """Log a state change (or a refused one): what, the answer, who and from where."""
    holder = request.get(_HOLDER_KEY)
    who = f"token {holder.describe()}" if holder is not None else "a client not authenticated"
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(
        level,
        "admin %s %s -> %d by %s from %s",
        request.method,
        request.path,
        status,
        who,
        request.remote or "?",
    )
