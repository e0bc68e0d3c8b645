"""`AdminClient`: the admin API from a script or `cairn ctl`, over plain blocking HTTP.

A client is given several endpoints (any node's admin address will do) and tries them in
turn: one that cannot be reached, or answers 503 (not ready), is skipped for the next. Any
other answer is final, errors included: a 400 from one node would be a 400 from all of
them. Answers are decoded into the `cairn.admin.views` values the server encoded.

Over HTTPS (a node with TLS on), `tls_context` builds the client's `ssl.SSLContext`: the CA
that signed the nodes' certificates, and the client certificate and key that a node with
`tls_auth_clients = "yes"` requires (mutual TLS).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cairn.admin.views import (
    EventPage,
    Json,
    NodeView,
    RegionView,
    SchemaError,
    StatusView,
    event_page_from_json,
    nodes_from_json,
    regions_from_json,
    rules_to_json,
    status_from_json,
)
from cairn.placement.model import PlacementRules
from cairn.runtime.config import ADMIN_PORT_OFFSET

DEFAULT_TIMEOUT = 5.0

DEFAULT_ENDPOINTS = tuple(f"127.0.0.1:{7001 + i + ADMIN_PORT_OFFSET}" for i in range(3))
"""Where `cairn ctl` looks when told nothing: the nodes of a default `cairn dev` cluster."""

_T = TypeVar("_T")


class AdminClientError(Exception):
    """Base of the client's failures."""


class UnreachableError(AdminClientError):
    """No endpoint answered; `reasons` says why, endpoint by endpoint."""

    def __init__(self, reasons: Sequence[tuple[str, str]]) -> None:
        self.reasons = tuple(reasons)
        detail = "; ".join(f"{e}: {why}" for e, why in self.reasons)
        super().__init__(f"no admin endpoint answered ({detail})")


@dataclass(frozen=True, slots=True)
class ApiError(AdminClientError):
    """The server refused the request (its HTTP status, error code and message)."""

    status: int
    code: str
    message: str
    endpoint: str

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status} {self.code} from {self.endpoint})"


class BadAnswerError(AdminClientError):
    """The server answered something that is not the API's JSON."""


def tls_context(
    cacert: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """The client context for HTTPS endpoints: trusting `cacert` (else the system's CAs),
    presenting the client certificate `cert` with its `key` (both or neither);
    `ValueError` naming the file that cannot be used."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key (--cert with --key)")
    try:
        context = ssl.create_default_context(cafile=None if cacert is None else str(cacert))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--cacert {cacert}: cannot use it: {exc}") from None
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--cert {cert} / --key {key}: cannot use them: {exc}") from None
    return context


def normalize_endpoint(text: str, scheme: str = "http") -> str:
    """`host:port` or an `http(s)://` URL as a base URL without a trailing slash; a bare
    `host:port` gets `scheme`."""
    text = text.strip()
    if not text:
        raise ValueError("an empty endpoint")
    url = text if "://" in text else f"{scheme}://{text}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not host:port or an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    if port is None and "://" not in text:
        raise ValueError(f"{text!r}: a port is needed (host:port)")
    return url.rstrip("/")


class AdminClient:
    """Calls the admin API on the first of `endpoints` that answers."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        scheme: str = "http",
    ) -> None:
        """`ssl_context`: for https endpoints (`tls_context`; None: the system's CAs);
        `scheme`: what a bare `host:port` endpoint speaks."""
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [normalize_endpoint(e, scheme) for e in endpoints]
        self.token = token
        self.timeout = timeout
        self.ssl_context = ssl_context

    # -- the API --------------------------------------------------------------------------

    def status(self) -> StatusView:
        """`GET /v1/status`."""
        return _decode(status_from_json, self.request("GET", "/v1/status"))

    def nodes(self) -> tuple[NodeView, ...]:
        """`GET /v1/nodes`."""
        return _decode(nodes_from_json, self.request("GET", "/v1/nodes"))

    def regions(self) -> tuple[RegionView, ...]:
        """`GET /v1/regions`."""
        return _decode(regions_from_json, self.request("GET", "/v1/regions"))

    def events(self, since: int = 0, limit: int = 100) -> EventPage:
        """`GET /v1/events`."""
        path = f"/v1/events?since={since}&limit={limit}"
        return _decode(event_page_from_json, self.request("GET", path))

    def drain_node(self, node_id: int, reason: str = "") -> str:
        """`POST /v1/nodes/{id}/drain`; the server's message."""
        body = {"reason": reason} if reason else {}
        return _message(self.request("POST", f"/v1/nodes/{node_id}/drain", body))

    def set_placement(self, rules: PlacementRules) -> str:
        """`POST /v1/placement`; the server's message."""
        return _message(self.request("POST", "/v1/placement", rules_to_json(rules)))

    def metrics(self) -> str:
        """`GET /metrics`, as text."""
        return self._call("GET", "/metrics", None)[1].decode()

    # -- transport ------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Json | None = None) -> Any:
        """The decoded JSON answer of the first endpoint that answers (see module doc)."""
        endpoint, raw = self._call(method, path, body)
        try:
            return json.loads(raw)
        except ValueError:
            raise BadAnswerError(f"{endpoint} answered {path} with non-JSON") from None

    def _call(self, method: str, path: str, body: Json | None) -> tuple[str, bytes]:
        reasons: list[tuple[str, str]] = []
        for endpoint in self.endpoints:
            try:
                return endpoint, self._once(endpoint, method, path, body)
            except _SkipError as skip:
                reasons.append((endpoint, str(skip)))
        raise UnreachableError(reasons)

    def _once(self, endpoint: str, method: str, path: str, body: Json | None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(endpoint + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            opened = urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context)
            with opened as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if exc.code == 503:
                raise _SkipError(f"not ready: {_error_message(raw, exc.reason)}") from None
            raise _api_error(exc.code, raw, str(exc.reason), endpoint) from None
        except OSError as exc:  # URLError and timeouts included
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise _SkipError(str(reason)) from None


class _SkipError(Exception):
    """This endpoint cannot answer now: try the next."""


def _error_message(raw: bytes, fallback: str) -> str:
    try:
        error = json.loads(raw)["error"]
        return str(error["message"])
    except (ValueError, KeyError, TypeError):
        return fallback


def _api_error(status: int, raw: bytes, reason: str, endpoint: str) -> ApiError:
    try:
        error = json.loads(raw)["error"]
        return ApiError(status, str(error["code"]), str(error["message"]), endpoint)
    except (ValueError, KeyError, TypeError):
        return ApiError(status, "http", reason, endpoint)


def _decode(decode: Callable[[Any], _T], doc: Any) -> _T:
    try:
        return decode(doc)
    except SchemaError as exc:
        raise BadAnswerError(f"unexpected answer: {exc}") from None


def _message(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])
    raise BadAnswerError(f"unexpected answer: {doc!r}")
