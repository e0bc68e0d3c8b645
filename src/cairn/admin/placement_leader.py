"""The admin API's hand-over of the placement group's leadership (PD's `member leader
transfer`, etcd's `move-leader`).

    POST /v1/placement/transfer-leader   {"to": N}
        -> {"from", "to", "moved", "leader", "term"}

The placement group (which also runs the timestamp oracle, `cairn.placement.tso`) elects
its leader by itself and nothing moves it; an operator takes its leader's node down for
maintenance, or the chaos runner changes leaders on purpose (`cairn.chaos.tso_faults`), by
asking the leader to hand over to member N: Raft's leadership transfer (the target is sent
`TimeoutNow` once it is caught up and campaigns at once), so the group is without a
leader for a round trip rather than an election timeout.

Only the serving placement leader answers: another node answers 503 naming the leader it
believes in (the admin client then tries the next endpoint). `to` must be a member of the
group (400 from any node) other than the leader (400 from the leader). The leader waits
up to `TRANSFER_WAIT_S` for its leadership to go; `moved` says whether it went, `leader`
and `term` are what this node sees then (the target may still be campaigning: `leader` 0).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cairn.admin.json_body import parse_json_object
from cairn.admin.source import BadRequestError, SourceUnavailableError

if TYPE_CHECKING:
    from cairn.runtime.node import Node

TRANSFER_WAIT_S = 2.0
"""How long the leader waits for its leadership to go before it answers."""
POLL_S = 0.01


class PlacementLeadership:
    """A node's side of the hand-over (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def transfer(self, to: object) -> dict[str, Any]:
        """Hand the leadership to member `to` (checked here) and wait for it to go."""
        placement = self.node.placement
        if placement is None:
            raise SourceUnavailableError("the node is starting or stopping")
        me = self.node.config.node_id
        if not isinstance(to, int) or isinstance(to, bool) or to not in placement.members:
            raise BadRequestError(f'"to" must be a placement member {list(placement.members)}')
        member = placement.serving_member()
        if member is None:  # before judging `to`: "itself" means the leader, not this node
            leader = placement.leader() or 0
            raise SourceUnavailableError(f"not the placement leader (leader: {leader})")
        if to == me:
            raise BadRequestError(f"node {to} already leads the placement group")
        replica = member.replica
        replica.transfer_leader(to)
        deadline = asyncio.get_running_loop().time() + TRANSFER_WAIT_S
        while replica.is_leader and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(POLL_S)
        moved = not replica.is_leader
        return {"from": me, "to": to, "moved": moved, "leader": replica.lead, "term": replica.term}


LEADERSHIP_KEY = web.AppKey("placement_leadership", PlacementLeadership)


async def post_transfer(request: web.Request) -> web.Response:
    """`POST /v1/placement/transfer-leader`."""
    body = parse_json_object(await request.read())
    return web.json_response(await request.app[LEADERSHIP_KEY].transfer(body.get("to")))


def add_routes(app: web.Application, leadership: PlacementLeadership) -> None:
    """Serve `POST /v1/placement/transfer-leader` from `leadership` on `app`."""
    app[LEADERSHIP_KEY] = leadership
    app.router.add_post("/v1/placement/transfer-leader", post_transfer)
