"""The admin API's read-out of the timestamp oracle (`cairn.placement.tso`).

    POST /v1/tso    take one timestamp through this node's TSO client:
                    {"node_id", "ts", "physical_ms", "logical", "placement_leader"}

A POST, not a GET: taking a timestamp moves the oracle on (every later one is larger).
It is what a transaction's coordinator on this node would get at that moment, so an
operator can check that the oracle answers and how far its physical part is from the
wall clock; 503 when no timestamp came within the request timeout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cairn.admin.source import SourceUnavailableError
from cairn.placement.tso import split

if TYPE_CHECKING:
    from cairn.runtime.node import Node


class NodeTimestamps:
    """A node's TSO client as the admin API uses it."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def take(self) -> dict[str, Any]:
        """One timestamp, with its parts and the placement leader this node believes in."""
        placement = self.node.placement
        if placement is None:
            raise SourceUnavailableError("the node is starting or stopping")
        future: asyncio.Future[int | str] = asyncio.get_running_loop().create_future()

        def settle(value: int | str) -> None:
            if not future.done():
                future.set_result(value)

        placement.timestamp(settle, settle)
        value = await future
        if isinstance(value, str):
            raise SourceUnavailableError(f"no timestamp: {value}")
        physical, logical = split(value)
        return {
            "node_id": self.node.config.node_id,
            "ts": value,
            "physical_ms": physical,
            "logical": logical,
            "placement_leader": placement.tso.client.target,
        }


TSO_KEY = web.AppKey("tso", NodeTimestamps)


async def post_tso(request: web.Request) -> web.Response:
    """`POST /v1/tso`."""
    return web.json_response(await request.app[TSO_KEY].take())


def add_routes(app: web.Application, tso: NodeTimestamps) -> None:
    """Serve `POST /v1/tso` from `tso` on `app`."""
    app[TSO_KEY] = tso
    app.router.add_post("/v1/tso", post_tso)
