"""`AdminServer`: the admin HTTP API (JSON under `/v1`) and `/metrics`, on aiohttp.

Theory of operation. The server owns no state: each request asks the node's `AdminSource`
and encodes the answer with `cairn.admin.views`. Every failure is a JSON body
`{"error": {"status", "code", "message"}}` with the matching HTTP status: an `AdminError`
raised by a handler or a source keeps its own status (400 bad input, 404 unknown node or
region, 501 placement driver not running, 503 node not ready); an unknown path or method is
404/405; anything else is logged and answered 500 without internals. Input is checked
before the source is called, so bad input is a 400 whatever the source could do.

Every request is checked by `cairn.admin.access` before its handler: a bearer token of
the node's token file (`cairn.runtime.admin_tokens`; role `read` or `admin`), no foreign `Origin`,
and for a state change `Content-Type: application/json` and an admin token (401, 403, 415
otherwise). State changes are logged with who asked and from where. The server binds where
it is told (the node's `admin_addr`); port 0 picks a free port, which `address` reports
once started; bound beyond loopback with no token configured, it does not start.

Routes (see docs/admin.md):

    GET  /v1/status                cluster summary and health
    GET  /v1/nodes[/{id}]          nodes
    GET  /v1/regions[/{id}]        regions
    GET  /v1/events?since=N&limit=M
    POST /v1/nodes/{id}/drain      {"reason": "..."} (optional)
    POST /v1/placement             {"replicas": N, "location_label": "zone", "ranges": [...]}
    POST /v1/regions/{id}/{split,merge,move,transfer-leader}, POST /v1/nodes/{id}/undrain,
    GET  /v1/operators/{id}        operators asked for by hand (`region_actions`)
    GET  /metrics                  Prometheus text format
    POST /v1/backup/{pause,unpause,open,chunk,close}   `cairn ctl backup` (`backup_api`)
    GET  /v1/session               the token's id, name and role (for the dashboard)
    GET  /v1/history?since_ms=T&node=N   node N's (default: this node's) figures over
                                   the last minutes
    GET  /v1/histories?nodes=1,2,3 several nodes' histories at once (for the dashboard)
    GET|POST /v1/tenants, DELETE /v1/tenants/{name}   `cairn ctl tenant` (`tenants_api`)
    POST /v1/tso                   take one timestamp of the placement group's TSO (`tso_api`)
    POST /v1/placement/transfer-leader  {"to": N}: hand the placement group's leadership
                                   to member N (`placement_leader`)
    GET  /dashboard                the web dashboard (`cairn.admin.dashboard`; no token
                                   for the page and its static files, which hold no data)
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from cairn.admin import dashboard
from cairn.admin import metrics as prom
from cairn.admin.access import Access, log_change
from cairn.admin.backup_api import NodeBackup, add_routes
from cairn.admin.dashboard import FORWARDER_KEY
from cairn.admin.forward import DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT, Forwarder, answer
from cairn.admin.history import HistoryFeed
from cairn.admin.http_log import http_error_logger
from cairn.admin.json_body import parse_json_body
from cairn.admin.placement_leader import PlacementLeadership
from cairn.admin.placement_leader import add_routes as add_leader_routes
from cairn.admin.placement_source import PlacementSource
from cairn.admin.region_actions import ENDPOINTS as REGION_ENDPOINTS
from cairn.admin.region_actions import DriverActions, RegionActions
from cairn.admin.region_actions import add_routes as add_region_routes
from cairn.admin.source import AdminError, AdminSource, BadRequestError
from cairn.admin.tenants_api import NodeTenants
from cairn.admin.tenants_api import add_routes as add_tenant_routes
from cairn.admin.tso_api import NodeTimestamps
from cairn.admin.tso_api import add_routes as add_tso_routes
from cairn.admin.views import (
    Json,
    SchemaError,
    rules_from_json,
)
from cairn.placement.model import InvalidRulesError
from cairn.runtime.admin_peer import AdminPeer, Args

log = logging.getLogger("cairn.admin")

API_VERSION = "v1"
MAX_BODY_BYTES = 64 << 10

_SOURCE_KEY = web.AppKey("source", AdminSource)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENDPOINTS = (
    "GET /v1/status",
    "GET /v1/nodes",
    "GET /v1/nodes/{id}",
    "GET /v1/regions",
    "GET /v1/regions/{id}",
    "GET /v1/events?since=N&limit=M",
    "POST /v1/nodes/{id}/drain",
    "POST /v1/placement",
    *REGION_ENDPOINTS,
    "GET /metrics",
    "GET /v1/session",
    "GET /v1/history?since_ms=T&node=N",
    "GET /v1/histories?nodes=1,2,3&since_ms=T",
    "GET /dashboard",
)


def _json(body: Json, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")) + "\n",
        status=status,
        content_type="application/json",
    )


def error_body(status: int, code: str, message: str) -> Json:
    """The JSON every failure is answered with."""
    return {"error": {"status": status, "code": code, "message": message}}


def _source(request: web.Request) -> AdminSource:
    return request.app[_SOURCE_KEY]


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{name}: {text!r} is not an integer") from None
    if not low <= value <= high:
        raise BadRequestError(f"{name}: {value} is not in [{low}, {high}]")
    return value


def _path_id(request: web.Request, what: str) -> int:
    text = request.match_info["id"]
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{what} id {text!r} is not an integer") from None
    if value <= 0:
        raise BadRequestError(f"{what} id must be positive, got {value}")
    return value


async def _body(request: web.Request, *, required: bool) -> Any:
    return parse_json_body(await request.read(), required=required)




# -- handlers ---------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """What this server offers."""
    return _json({"api": API_VERSION, "endpoints": list(ENDPOINTS)})


def _forwarder(request: web.Request) -> Forwarder | None:
    return request.app.get(FORWARDER_KEY)


async def _view(request: web.Request, view: str, args: Args) -> web.Response:
    """`view` as this node answers it, or the placement leader (`cairn.admin.forward`)."""
    feed = request.app.get(dashboard.FEED_KEY)
    status, body = await answer(_source(request), feed, _forwarder(request), view, args)
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


async def get_status(request: web.Request) -> web.Response:
    """`GET /v1/status`."""
    return await _view(request, "status", [])


async def get_nodes(request: web.Request) -> web.Response:
    """`GET /v1/nodes`."""
    return await _view(request, "nodes", [])


async def get_node(request: web.Request) -> web.Response:
    """`GET /v1/nodes/{id}`."""
    return await _view(request, "node", [_path_id(request, "node")])


async def get_regions(request: web.Request) -> web.Response:
    """`GET /v1/regions`."""
    return await _view(request, "regions", [])


async def get_region(request: web.Request) -> web.Response:
    """`GET /v1/regions/{id}`."""
    return await _view(request, "region", [_path_id(request, "region")])


async def get_events(request: web.Request) -> web.Response:
    """`GET /v1/events?since=N&limit=M`: events numbered after N, at most M (the newest)."""
    since = _int_param(request, "since", 0, 0, 2**63 - 1)
    limit = _int_param(request, "limit", DEFAULT_EVENT_LIMIT, 1, MAX_EVENT_LIMIT)
    return await _view(request, "events", [since, limit])


async def post_drain(request: web.Request) -> web.Response:
    """`POST /v1/nodes/{id}/drain`, body optionally `{"reason": "..."}`."""
    node_id = _path_id(request, "node")
    body = await _body(request, required=False)
    reason = body.get("reason", "") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise BadRequestError('the body must be {"reason": "<text>"} or empty')
    return await _view(request, "drain", [node_id, reason])


async def post_placement(request: web.Request) -> web.Response:
    """`POST /v1/placement`: the desired placement rules."""
    body = await _body(request, required=True)
    try:
        rules_from_json(body).validate()
    except (SchemaError, InvalidRulesError) as exc:
        raise BadRequestError(f"invalid placement rules: {exc}") from None
    return await _view(request, "placement", [json.dumps(body, separators=(",", ":"))])


async def get_metrics(request: web.Request) -> web.Response:
    """`GET /metrics` in the Prometheus text format."""
    body = prom.render(_source(request).metrics())
    response = web.Response(body=body)
    response.content_type = "text/plain"
    response.headers["Content-Type"] = prom.CONTENT_TYPE
    return response


# -- middleware -------------------------------------------------------------------------


def _errors_middleware(access: Access) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        response = await _answer(request, handler, access)
        if request.method not in ("GET", "HEAD"):
            log_change(request, response.status)
        return response

    return middleware


async def _answer(request: web.Request, handler: _Handler, access: Access) -> web.StreamResponse:
    try:
        if not dashboard.is_public(request):
            access.check(request)
        return await handler(request)
    except AdminError as exc:
        response = _json(error_body(exc.status, exc.code, str(exc)), exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="cairn-admin"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"{request.method} {request.path}: {exc.reason}"
        return _json(error_body(exc.status, _http_code(exc.status), message), exc.status)
    except Exception:
        log.exception("admin request %s %s failed", request.method, request.path)
        message = "internal error (see the node's log)"
        return _json(error_body(500, "internal", message), 500)


def _http_code(status: int) -> str:
    codes = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}
    return codes.get(status, "bad-request" if status < 500 else "internal")


def make_app(
    source: AdminSource,
    access: Access,
    backup: NodeBackup | None = None,
    history: HistoryFeed | None = None,
    tenants: NodeTenants | None = None,
    peer: AdminPeer | None = None,
    regions: RegionActions | None = None,
    tso: NodeTimestamps | None = None,
) -> web.Application:
    """The aiohttp application answering the admin API from `source`, to whom `access`
    lets in; with `backup`, the backup endpoints too; with the dashboard (and
    `/v1/history` when `history` is given); with `peer`, the views this node cannot
    answer are asked of the node that can, and other nodes' questions answered
    (`cairn.admin.forward`). The operator requests go to `regions` (by default the
    driver of a `PlacementSource`; none: they answer 501)."""
    app = web.Application(middlewares=[_errors_middleware(access)], client_max_size=MAX_BODY_BYTES)
    app[_SOURCE_KEY] = source
    if peer is not None:
        forwarder = Forwarder(peer, source, history)
        app[FORWARDER_KEY] = forwarder
        app.cleanup_ctx.append(_answering(forwarder))
    app.router.add_get("/", index)
    app.router.add_get("/v1", index)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/nodes", get_nodes)
    app.router.add_get("/v1/nodes/{id}", get_node)
    app.router.add_post("/v1/nodes/{id}/drain", post_drain)
    app.router.add_get("/v1/regions", get_regions)
    app.router.add_get("/v1/regions/{id}", get_region)
    app.router.add_get("/v1/events", get_events)
    app.router.add_post("/v1/placement", post_placement)
    app.router.add_get("/metrics", get_metrics)
    if regions is None and isinstance(source, PlacementSource):
        regions = DriverActions(source.driver, source.clock)
    add_region_routes(app, regions)
    if backup is not None:
        add_routes(app, backup)
    if tenants is not None:
        add_tenant_routes(app, tenants)
    if tso is not None:
        add_tso_routes(app, tso)
        add_leader_routes(app, PlacementLeadership(tso.node))
    dashboard.setup(app, access, history)
    return app


def _answering(forwarder: Forwarder) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context that answers other nodes' questions while the app runs."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        forwarder.attach()
        yield
        forwarder.detach()

    return run


class AdminServer:
    """The admin API of one node, listening on `host:port` between `start` and `stop`."""

    def __init__(
        self,
        source: AdminSource,
        host: str,
        port: int,
        *,
        access: Access,
        ssl_context: ssl.SSLContext | None = None,
        backup: NodeBackup | None = None,
        history: HistoryFeed | None = None,
        tenants: NodeTenants | None = None,
        peer: AdminPeer | None = None,
        regions: RegionActions | None = None,
        tso: NodeTimestamps | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.access = access
        self.ssl_context = ssl_context
        """HTTPS with this context (the node's TLS one, `cairn.runtime.tls`); None: HTTP."""
        self.backup = backup
        self.app = make_app(source, access, backup, history, tenants, peer, regions, tso)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve (an `OSError` if the address is taken, `AdminStartError` if the
        protected mode refuses: beyond loopback with no token)."""
        self.access.check_start(self.host, self.port)
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, logger=http_error_logger()
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context
        )
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        scheme = "http" if self.ssl_context is None else "https"
        log.info("admin API on %s://%s:%d/v1", scheme, *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """The address listened on (the real port when started with port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the admin server is not started")
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Stop listening and finish (then drop) the requests in flight."""
        if self.backup is not None:
            self.backup.close_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
