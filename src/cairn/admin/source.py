"""`AdminSource`: what the admin API reads from a node and the actions it can ask of it.

A node hands its `AdminServer` one `AdminSource`. The reads are `async` because once the
placement driver runs in its own Raft group, a node that is not the group's leader may
have to ask the leader (or wait for its own replica to catch up) before answering; the
actions are `async` because they become Raft proposals. `metrics` alone is synchronous:
it reports this process's own figures, and Prometheus collects them synchronously.

Failures are typed: each `AdminError` carries the HTTP status the server answers with, so
a source says what went wrong and the server only formats it.
"""

from __future__ import annotations

from typing import Protocol

from cairn.admin.metrics import MetricsSnapshot
from cairn.admin.views import ActionResult, EventPage, NodeView, RegionView, StatusView
from cairn.placement.model import PlacementRules


class AdminError(Exception):
    """A request the admin API refuses; `status` is the HTTP status to answer with."""

    status = 500
    code = "internal"


class BadRequestError(AdminError):
    """The request is malformed or asks for something impossible (HTTP 400)."""

    status = 400
    code = "bad-request"


class UnauthorizedError(AdminError):
    """The request carries no admin token, or one the node does not know (HTTP 401)."""

    status = 401
    code = "unauthorized"


class ForbiddenError(AdminError):
    """The token may not do this (a read-only token asking for a state change), or the
    request comes from a web page of another origin (HTTP 403)."""

    status = 403
    code = "forbidden"


class UnsupportedMediaTypeError(AdminError):
    """A state change whose body is not declared `application/json` (HTTP 415): what a
    cross-origin HTML form can send (text/plain, urlencoded, multipart) is refused."""

    status = 415
    code = "unsupported-media-type"


class NotFoundError(AdminError):
    """No such node, region or endpoint (HTTP 404)."""

    status = 404
    code = "not-found"


class PlacementUnavailableError(AdminError):
    """The action needs the placement driver, which does not run here yet (HTTP 501)."""

    status = 501
    code = "placement-not-running"


class SourceUnavailableError(AdminError):
    """The node cannot answer right now (starting, stopping, no placement leader; HTTP 503)."""

    status = 503
    code = "unavailable"


class LeaderElsewhereError(SourceUnavailableError):
    """Another node (`leader`) leads the placement group and has the cluster's views: the
    admin server asks it (`cairn.admin.forward`), or answers 503 naming it."""

    def __init__(self, leader: int, message: str) -> None:
        super().__init__(message)
        self.leader = leader


PLACEMENT_NOT_RUNNING = (
    "the placement driver is not running in this cluster yet: the layout is static "
    "(one region over the whole keyspace), so nodes cannot be drained and placement rules "
    "cannot be set"
)


class AdminSource(Protocol):
    """What a node offers its admin server (see the module docstring)."""

    async def status(self) -> StatusView:
        """The cluster summary."""
        ...

    async def nodes(self) -> list[NodeView]:
        """Every node the cluster knows, by id."""
        ...

    async def regions(self) -> list[RegionView]:
        """Every known region, in key order."""
        ...

    async def events(self, since: int, limit: int) -> EventPage:
        """Events numbered after `since`, oldest first, at most `limit` (the newest ones)."""
        ...

    async def drain_node(self, node_id: int, reason: str) -> ActionResult:
        """Move every replica and leader off `node_id`; `NotFoundError` if unknown."""
        ...

    async def set_placement(self, rules: PlacementRules) -> ActionResult:
        """Declare the desired placement (rules already validated by the caller)."""
        ...

    def metrics(self) -> MetricsSnapshot:
        """This process's figures, for `/metrics`."""
        ...
