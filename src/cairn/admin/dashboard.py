"""The web dashboard every node's admin API serves at `/dashboard`.

Theory of operation. The page is rendered here as a fixed HTML skeleton that holds no
data, with one stylesheet and one plain script shipped in `cairn/admin/static/` (no
build step, nothing fetched from elsewhere). Because it holds no data it is served
without a token, like a login page; everything the page shows, the script reads from the
JSON API (`/v1/status`, `/v1/nodes`, `/v1/regions`, `/v1/events`, `/v1/history`) with
`fetch()` and an `Authorization: Bearer` header, so every read and every action passes
`cairn.admin.access` exactly as `cairn ctl`'s do.

How the browser holds the token: the page asks for it once and keeps it in the tab's
`sessionStorage` (gone when the tab closes, never sent by the browser on its own). There
is no cookie, so a page of another site cannot make the browser act with it (no CSRF),
and the Origin rule of `access` still refuses any cross-origin call. The pages are sent
with a Content-Security-Policy that allows only this origin's script and style and no
inline script, and the script writes every value with `textContent`, never as markup, so
a hostile value (a node label, an event reason) cannot run code next to the token.

The public paths are only `GET /dashboard` and the listed static files; `is_public`
tells the server's middleware so. `GET /v1/session` says which token the page holds
(id, name, role), so the page disables the actions for a read-only token; the server
still refuses them (403) whatever the page does.

`GET /v1/history` is the node's `History` (`cairn.admin.history`), sampled by a task
that lives as long as the application; `GET /v1/history?node=N` is node N's, asked of it
over the peer transport (`cairn.admin.forward`); `GET /v1/histories?nodes=1,2,3` asks
them all at once (what the page polls: one request, and a node down is listed as
unanswered rather than failing it), so the page charts every node from whichever node
it is open on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import importlib.resources
import json
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from cairn.admin.access import Access
from cairn.admin.forward import Forwarder
from cairn.admin.history import HistoryFeed, sample_forever
from cairn.admin.source import BadRequestError, NotFoundError, SourceUnavailableError

PAGE_PATH = "/dashboard"
STATIC_PREFIX = "/dashboard/static/"
STATIC_FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
"""The static files served, and their media types; any other name is 404."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


FEED_KEY = web.AppKey("history_feed", HistoryFeed)
FORWARDER_KEY = web.AppKey("forwarder", Forwarder)
"""The admin app's `Forwarder` (set by `cairn.admin.server.make_app` when the node has
peers to ask)."""
_ACCESS_KEY = web.AppKey("dashboard_access", Access)
_PAGE_KEY = web.AppKey("dashboard_page", str)
_ASSETS_KEY = web.AppKey("dashboard_assets", dict[str, bytes])


def is_public(request: web.Request) -> bool:
    """Whether the request is for the dashboard's page or a static file (no token needed:
    they hold no data)."""
    if request.method not in ("GET", "HEAD"):
        return False
    path = request.path
    if path == PAGE_PATH:
        return True
    return path.startswith(STATIC_PREFIX) and path[len(STATIC_PREFIX) :] in STATIC_FILES


def _static(name: str) -> bytes:
    return importlib.resources.files("cairn.admin").joinpath("static", name).read_bytes()


def render_page() -> str:
    """The dashboard's HTML: the skeleton the script fills (no data in it)."""
    version = html.escape(_asset_version())
    return _PAGE.replace("{version}", version)


def _asset_version() -> str:
    """A short tag that changes with the static files (cache busting)."""
    digest = hashlib.sha256(b"".join(_static(n) for n in sorted(STATIC_FILES)))
    return digest.hexdigest()[:12]


def _secured(response: web.Response) -> web.Response:
    response.headers.update(SECURITY_HEADERS)
    return response


async def get_page(request: web.Request) -> web.Response:
    """`GET /dashboard`."""
    return _secured(web.Response(text=request.app[_PAGE_KEY], content_type="text/html"))


async def get_static(request: web.Request) -> web.Response:
    """`GET /dashboard/static/{name}`: one of `STATIC_FILES`."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    body = request.app[_ASSETS_KEY][name]
    return _secured(web.Response(body=body, content_type=STATIC_FILES[name], charset="utf-8"))


async def get_session(request: web.Request) -> web.Response:
    """`GET /v1/session`: the token the request carries (id, name, role; never the
    token), so the page knows whether to offer the actions."""
    holder = request.app[_ACCESS_KEY].check(request)
    body: dict[str, object] = {"token_id": None, "name": None, "role": None}
    if holder is not None:
        body = {"token_id": holder.id, "name": holder.name, "role": holder.role.value}
    return web.json_response(body)


async def get_history(request: web.Request) -> web.Response:
    """`GET /v1/history?since_ms=T&node=N`: node N's samples newer than T (all by
    default); N is this node by default, another is asked over the peer transport."""
    since = _query_int(request, "since_ms", 0, 0)
    feed = request.app[FEED_KEY]
    node = _query_int(request, "node", feed.history.node_id, 1)
    forwarder = request.app.get(FORWARDER_KEY)
    if node == feed.history.node_id or forwarder is None:
        if node != feed.history.node_id:
            raise NotFoundError(f"node {node}'s history is only on node {node}")
        return web.json_response(feed.history.to_json(since))
    status, body = await forwarder.ask(node, "history", [since])
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


MAX_HISTORY_NODES = 64
"""The most nodes one `GET /v1/histories` may name."""


async def get_histories(request: web.Request) -> web.Response:
    """`GET /v1/histories?nodes=1,2,3&since_ms=T`: the history of each node named, asked
    of them at once; a node that does not answer (down, not connected, too slow) is
    listed under "unanswered" with the reason, so the page charts the others."""
    since = _query_int(request, "since_ms", 0, 0)
    ids = _node_list(request.query.get("nodes", ""))
    feed = request.app[FEED_KEY]
    forwarder = request.app.get(FORWARDER_KEY)

    async def one(node: int) -> tuple[int, bytes] | str:
        if node == feed.history.node_id:
            return 200, json.dumps(feed.history.to_json(since)).encode()
        if forwarder is None:
            return f"node {node}'s history is only on node {node}"
        try:
            return await forwarder.ask(node, "history", [since])
        except SourceUnavailableError as exc:
            return str(exc)

    histories: list[object] = []
    unanswered: dict[str, str] = {}
    for node, got in zip(ids, await asyncio.gather(*(one(n) for n in ids)), strict=True):
        if isinstance(got, str):
            unanswered[str(node)] = got
        elif got[0] != 200:
            unanswered[str(node)] = _error_message(got[1])
        else:
            histories.append(json.loads(got[1]))
    return web.json_response({"histories": histories, "unanswered": unanswered})


def _node_list(text: str) -> list[int]:
    parts = text.split(",") if text else []
    if not 0 < len(parts) <= MAX_HISTORY_NODES:
        raise BadRequestError(f"nodes: name 1 to {MAX_HISTORY_NODES} node ids, comma-separated")
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise BadRequestError(f"nodes: {text[:60]!r} is not a list of node ids") from None
    if not all(0 < n < 2**63 for n in ids):
        raise BadRequestError("nodes: a node id is positive")
    return list(dict.fromkeys(ids))


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return "no answer"


def _query_int(request: web.Request, name: str, default: int, low: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{name}: {text[:40]!r} is not an integer") from None
    if not low <= value < 2**63:
        raise BadRequestError(f"{name}: {value} is out of range")
    return value


def setup(app: web.Application, access: Access, feed: HistoryFeed | None) -> None:
    """Add the dashboard's routes to the admin `app` (and `/v1/history` with its sampling
    task when the node gives a `feed`)."""
    app[_ACCESS_KEY] = access
    app[_PAGE_KEY] = render_page()
    app[_ASSETS_KEY] = {name: _static(name) for name in STATIC_FILES}
    app.router.add_get(PAGE_PATH, get_page)
    app.router.add_get(STATIC_PREFIX + "{name}", get_static)
    app.router.add_get("/v1/session", get_session)
    if feed is not None:
        app[FEED_KEY] = feed
        app.router.add_get("/v1/history", get_history)
        app.router.add_get("/v1/histories", get_histories)
        app.cleanup_ctx.append(_sampling(feed))


def _sampling(feed: HistoryFeed) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context that samples `feed` while the application runs."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sample_forever(feed.history, feed.read))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cairn dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/dashboard.css?v={version}">
<script src="/dashboard/static/dashboard.js?v={version}" defer></script>
</head>
<body>
<header>
  <h1>Cairn</h1>
  <span id="cluster" class="muted"></span>
  <span id="health" class="badge"></span>
  <span id="who" class="muted"></span>
  <button id="logout" type="button" hidden>Forget token</button>
</header>
<div id="banner" class="banner" hidden></div>
<section id="login" hidden>
  <h2>Admin token</h2>
  <p>Paste an admin API token (<code>cairn dev</code> writes one to
  <code>cairn-data/admin.token</code>). It is kept in this tab only.</p>
  <form id="login-form">
    <input id="token" type="password" autocomplete="off" placeholder="token" size="48">
    <button type="submit">Open</button>
  </form>
  <p id="login-error" class="error"></p>
</section>
<main id="main" hidden>
  <section>
    <h2>Nodes</h2>
    <table id="nodes">
      <thead><tr><th>node</th><th>zone</th><th>state</th><th>regions</th><th>leaders</th>
      <th>disk</th><th>memory</th><th>client address</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Regions over the key space</h2>
    <div id="keymap" class="keymap"></div>
    <table id="regions">
      <thead><tr><th>region</th><th>slots</th><th>health</th><th>size</th><th>keys</th>
      <th>writes/s</th><th>leader</th><th>replicas</th><th>learners</th><th>operator</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="cols">
    <div>
      <h2>Self-healing: events</h2>
      <ol id="events" class="events"></ol>
    </div>
    <div>
      <h2>Running operators</h2>
      <ul id="operators" class="operators"></ul>
      <h2>Placement</h2>
      <p id="rules" class="muted"></p>
      <form id="replicas-form">
        <label>replicas <input id="replicas" type="number" min="1" max="7" size="3"></label>
        <button id="replicas-set" type="submit">Set</button>
      </form>
      <p id="action-result" class="muted"></p>
    </div>
  </section>
  <section>
    <h2>Every node over the last minutes <span id="history-node" class="muted"></span></h2>
    <div class="charts">
      <figure><figcaption>throughput per node (commands/s)</figcaption>
        <svg id="chart-ops" class="chart" viewBox="0 0 400 140"></svg></figure>
      <figure><figcaption>latency per node: p99 (us)</figcaption>
        <svg id="chart-latency" class="chart" viewBox="0 0 400 140"></svg></figure>
      <figure><figcaption>Raft commit lag per node (entries)</figcaption>
        <svg id="chart-lag" class="chart" viewBox="0 0 400 140"></svg></figure>
    </div>
  </section>
</main>
</body>
</html>
"""
