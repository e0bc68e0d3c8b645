"""Every node's admin API answers every view: it asks the node that has it.

Theory of operation. The admin API's answers are named views (`VIEWS`: "status",
"nodes", "node", "regions", "region", "events", "history", and the actions "drain" and
"placement"), each a function of the node's `AdminSource` (and history) and a few
arguments, giving an HTTP status and a JSON document. The HTTP handlers of
`cairn.admin.server` and `cairn.admin.dashboard` call `answer`, which runs the view here;
when the source says another node leads the placement group (`LeaderElsewhereError`),
it asks that node instead, over the peer transport (`cairn.runtime.admin_peer`), and
answers with that node's status and body unchanged: a view asked of any node answers as
the leader's would. A node's history is asked of that node (`/v1/history?node=N`).

The node asked runs the view on its own source and never asks further (a node that does
not lead either answers 503): the question reaches at most one other node. Who may ask is
decided where the question came in: the caller's token and role were checked by the node
it called (`cairn.admin.access`); the node answering trusts an authenticated peer (the
cluster secret), as it does with Raft messages, and logs the actions it is asked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from cairn.admin.history import HistoryFeed
from cairn.admin.source import (
    AdminError,
    AdminSource,
    BadRequestError,
    LeaderElsewhereError,
    NotFoundError,
    SourceUnavailableError,
)
from cairn.admin.views import (
    Json,
    SchemaError,
    event_page_to_json,
    node_to_json,
    region_to_json,
    rules_from_json,
    rules_to_json,
    status_to_json,
)
from cairn.placement.model import InvalidRulesError
from cairn.runtime.admin_peer import AdminPeer, Args, PeerUnavailableError, error_json

log = logging.getLogger("cairn.admin")

DEFAULT_EVENT_LIMIT = 100
MAX_EVENT_LIMIT = 1000
MAX_SEQ = 2**63 - 1

View = Callable[[AdminSource, HistoryFeed | None, Args], Awaitable[tuple[int, Json]]]


def encode(doc: Json) -> bytes:
    """A JSON answer's bytes, as the admin API sends them."""
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def _int(args: Args, index: int, name: str, low: int, high: int) -> int:
    value = args[index] if index < len(args) else None
    if type(value) is not int or not low <= value <= high:
        raise BadRequestError(f"{name}: {value!r:.40} is not an integer in [{low}, {high}]")
    return value


def _text(args: Args, index: int, name: str) -> str:
    value = args[index] if index < len(args) else None
    if not isinstance(value, str):
        raise BadRequestError(f"{name} must be text")
    return value


def _arity(args: Args, count: int, view: str) -> None:
    if len(args) != count:
        raise BadRequestError(f"the view {view!r} takes {count} argument(s)")


async def _status(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 0, "status")
    return 200, status_to_json(await source.status())


async def _nodes(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 0, "nodes")
    return 200, {"nodes": [node_to_json(n) for n in await source.nodes()]}


async def _node(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 1, "node")
    node_id = _int(args, 0, "node id", 1, MAX_SEQ)
    found = [n for n in await source.nodes() if n.id == node_id]
    if not found:
        raise NotFoundError(f"node {node_id} is not a member of the cluster")
    return 200, node_to_json(found[0])


async def _regions(
    source: AdminSource, feed: HistoryFeed | None, args: Args
) -> tuple[int, Json]:
    _arity(args, 0, "regions")
    return 200, {"regions": [region_to_json(r) for r in await source.regions()]}


async def _region(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 1, "region")
    region_id = _int(args, 0, "region id", 1, MAX_SEQ)
    found = [r for r in await source.regions() if r.id == region_id]
    if not found:
        raise NotFoundError(f"region {region_id} is not known")
    return 200, region_to_json(found[0])


async def _events(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 2, "events")
    since = _int(args, 0, "since", 0, MAX_SEQ)
    limit = _int(args, 1, "limit", 1, MAX_EVENT_LIMIT)
    return 200, event_page_to_json(await source.events(since, limit))


async def _history(
    source: AdminSource, feed: HistoryFeed | None, args: Args
) -> tuple[int, Json]:
    _arity(args, 1, "history")
    since = _int(args, 0, "since_ms", 0, MAX_SEQ)
    if feed is None:
        raise NotFoundError("this node keeps no history")
    return 200, feed.history.to_json(since)


async def _drain(source: AdminSource, feed: HistoryFeed | None, args: Args) -> tuple[int, Json]:
    _arity(args, 2, "drain")
    node_id = _int(args, 0, "node id", 1, MAX_SEQ)
    result = await source.drain_node(node_id, _text(args, 1, "reason"))
    return 202, {"ok": True, "message": result.message}


async def _placement(
    source: AdminSource, feed: HistoryFeed | None, args: Args
) -> tuple[int, Json]:
    _arity(args, 1, "placement")
    try:
        rules = rules_from_json(json.loads(_text(args, 0, "rules")))
        rules.validate()
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    except (SchemaError, InvalidRulesError) as exc:
        raise BadRequestError(f"invalid placement rules: {exc}") from None
    result = await source.set_placement(rules)
    return 200, {"ok": True, "message": result.message, "rules": rules_to_json(rules)}


VIEWS: dict[str, View] = {
    "status": _status,
    "nodes": _nodes,
    "node": _node,
    "regions": _regions,
    "region": _region,
    "events": _events,
    "history": _history,
    "drain": _drain,
    "placement": _placement,
}
ACTIONS = frozenset({"drain", "placement"})


async def run_view(
    source: AdminSource, feed: HistoryFeed | None, view: str, args: Args
) -> tuple[int, Json]:
    """The (HTTP status, document) of `view` here (an `AdminError` when refused)."""
    function = VIEWS.get(view)
    if function is None:
        raise NotFoundError(f"no admin view {view!r:.40}")
    return await function(source, feed, args)


class Forwarder:
    """Asks other nodes for views (`ask`), and answers theirs with this node's (`serve`,
    set on the node's `AdminPeer` while the admin server runs)."""

    def __init__(self, peer: AdminPeer, source: AdminSource, feed: HistoryFeed | None) -> None:
        self.peer = peer
        self.source = source
        self.feed = feed

    def attach(self) -> None:
        """Answer other nodes' questions from now on."""
        self.peer.serve = self.serve

    def detach(self) -> None:
        """Stop answering (they get 503)."""
        if self.peer.serve == self.serve:
            self.peer.serve = None

    async def serve(self, asker: int, view: str, args: Args) -> tuple[int, bytes]:
        """Node `asker`'s question, answered from this node only (never asked further)."""
        if view in ACTIONS:
            log.info("admin action %s asked by node %d for its caller", view, asker)
        try:
            status, doc = await run_view(self.source, self.feed, view, args)
        except AdminError as exc:
            return exc.status, error_json(exc.status, exc.code, str(exc))
        return status, encode(doc)

    async def ask(self, node: int, view: str, args: Args) -> tuple[int, bytes]:
        """Node `node`'s answer to `view` (503 `SourceUnavailableError` if none comes)."""
        try:
            return await self.peer.ask(node, view, args)
        except PeerUnavailableError as exc:
            raise SourceUnavailableError(f"asking node {node}: {exc}") from None


async def answer(
    source: AdminSource,
    feed: HistoryFeed | None,
    forwarder: Forwarder | None,
    view: str,
    args: Args,
) -> tuple[int, bytes]:
    """`view` answered here, or by the placement leader when it has the cluster's views."""
    try:
        status, doc = await run_view(source, feed, view, args)
    except LeaderElsewhereError as exc:
        if forwarder is None:
            raise
        return await forwarder.ask(exc.leader, view, args)
    return status, encode(doc)
