"""The admin API's operator requests: split, merge, move, transfer a leader, undrain.

Routes (see docs/admin.md), each a state change (admin token, JSON body):

    POST /v1/regions/{id}/split            {"slot": N} or {"policy": "middle"|"size"}
    POST /v1/regions/{id}/merge            {"into": M} (optional: a neighbour of the region)
    POST /v1/regions/{id}/move             {"from": A, "to": B}
    POST /v1/regions/{id}/transfer-leader  {"to": N}
    POST /v1/nodes/{id}/undrain            {"reason": "..."} (optional): cancel a drain
    GET  /v1/operators/{id}                an operator, running or finished

Every body may also carry `"reason": "<text>"`, kept with the operator. An accepted request
answers 202 with the operator it started (`cairn.placement.requests`); a refused one 404
when the region is unknown, else 409 (`refused`) with the driver's reason (busy with
another operator, target node down, not a member...). The operator then runs like any
other: `GET /v1/operators/{id}` says when it succeeded, was cancelled or timed out.

Where the actions go. `RegionActions` is what the routes need; `DriverActions` applies the
commands to a driver at hand (tests, the toy cluster), `NodeActions` on a real node
proposes them through the placement group when this node leads it and answers 503 naming
the leader otherwise, as `ClusterAdminSource` does for the other actions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from cairn.admin.source import (
    PLACEMENT_NOT_RUNNING,
    AdminError,
    BadRequestError,
    NotFoundError,
    PlacementUnavailableError,
    SourceUnavailableError,
)
from cairn.placement.commands import (
    Ack,
    Command,
    RequestKind,
    RequestOperator,
    RequestReply,
    Result,
    SetNodeAdmin,
    SplitChoice,
)
from cairn.placement.driver import PlacementDriver
from cairn.placement.model import NodeAdmin
from cairn.placement.operators import Operator
from cairn.placement.steps import describe_step
from cairn.store.slot import SLOT_COUNT

if TYPE_CHECKING:
    from cairn.runtime.node import Node

MAX_REASON_CHARS = 200
MAX_ID = 2**63 - 1

ENDPOINTS = (
    "POST /v1/regions/{id}/split",
    "POST /v1/regions/{id}/merge",
    "POST /v1/regions/{id}/move",
    "POST /v1/regions/{id}/transfer-leader",
    "POST /v1/nodes/{id}/undrain",
    "GET /v1/operators/{id}",
)

Json = dict[str, Any]


class RefusedError(AdminError):
    """The placement driver refused the request as things stand (HTTP 409)."""

    status = 409
    code = "refused"


class RegionActions(Protocol):
    """What the routes of this module ask of a node (see the module docstring)."""

    async def apply(self, command: Command) -> Result:
        """Apply one placement command through the driver; its result."""
        ...

    async def operator(self, operator_id: int) -> Operator | None:
        """Operator `operator_id`, running or finished (None: unknown)."""
        ...

    def now_ms(self) -> int:
        """The time stamped on a command (the placement leader stamps its own anyway)."""
        ...


class DriverActions:
    """`RegionActions` on a driver whose state is at hand."""

    def __init__(self, driver: PlacementDriver, clock: Callable[[], int]) -> None:
        self.driver = driver
        self.clock = clock

    async def apply(self, command: Command) -> Result:
        """Apply `command` to the driver."""
        return self.driver.apply(command)

    async def operator(self, operator_id: int) -> Operator | None:
        """See `RegionActions.operator`."""
        return self.driver.operator(operator_id)

    def now_ms(self) -> int:
        """The clock's reading."""
        return self.clock()


class NodeActions:
    """`RegionActions` of a `cairn server` node (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def _driver(self) -> PlacementDriver:
        node = self.node
        placement = node.placement
        if node.stopping or placement is None:
            raise SourceUnavailableError("the node is starting or stopping")
        member = placement.serving_member()
        if member is not None:
            return member.driver
        leader = placement.leader()
        if leader is not None and leader != node.config.node_id:
            address = node.transport.client_addrs.get(leader, "?")
            raise SourceUnavailableError(
                f"node {leader} ({address}) leads the placement group: ask its admin API"
            )
        raise SourceUnavailableError("the placement group has no leader right now")

    async def apply(self, command: Command) -> Result:
        """Propose `command` through the placement group (this node must lead it)."""
        self._driver()
        placement = self.node.placement
        results = None if placement is None else await placement.submit((command,))
        if not results:
            raise SourceUnavailableError("the placement group lost its leader; try again")
        return results[0]

    async def operator(self, operator_id: int) -> Operator | None:
        """Read from the placement leader's metadata."""
        return self._driver().operator(operator_id)

    def now_ms(self) -> int:
        """Wall-clock milliseconds."""
        return int(time.time() * 1000)


_ACTIONS_KEY = web.AppKey("region_actions", RegionActions)


def add_routes(app: web.Application, actions: RegionActions | None) -> None:
    """The routes of this module on `app`; without `actions` they answer 501 (no driver)."""
    if actions is not None:
        app[_ACTIONS_KEY] = actions
    app.router.add_post("/v1/regions/{id}/split", post_split)
    app.router.add_post("/v1/regions/{id}/merge", post_merge)
    app.router.add_post("/v1/regions/{id}/move", post_move)
    app.router.add_post("/v1/regions/{id}/transfer-leader", post_transfer)
    app.router.add_post("/v1/nodes/{id}/undrain", post_undrain)
    app.router.add_get("/v1/operators/{id}", get_operator)


def _actions(request: web.Request) -> RegionActions:
    actions = request.app.get(_ACTIONS_KEY)
    if actions is None:
        raise PlacementUnavailableError(PLACEMENT_NOT_RUNNING)
    return actions


# -- input ----------------------------------------------------------------------------------


def _id(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{what} id {text!r} is not an integer") from None
    if not 0 < value <= MAX_ID:
        raise BadRequestError(f"{what} id must be in 1..{MAX_ID}, got {value}")
    return value


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        text = (await request.read()).decode()
    except UnicodeDecodeError:
        raise BadRequestError("the body is not UTF-8") from None
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - allowed - {"reason"})
    if unknown:
        raise BadRequestError(f"unknown field(s): {', '.join(unknown)}")
    return body


def _int_field(body: dict[str, Any], name: str, low: int, high: int, *, required: bool) -> int:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequestError(f'"{name}" is required')
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f'"{name}" must be an integer')
    if not low <= value <= high:
        raise BadRequestError(f'"{name}" must be in {low}..{high}, got {value}')
    return value


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise BadRequestError('"reason" must be a string')
    if len(reason) > MAX_REASON_CHARS:
        raise BadRequestError(f'"reason" is longer than {MAX_REASON_CHARS} characters')
    return reason


# -- handlers -------------------------------------------------------------------------------


async def post_split(request: web.Request) -> web.Response:
    """`POST /v1/regions/{id}/split`: at a slot, or where the driver chooses."""
    region_id = _id(request.match_info["id"], "region")
    body = await _body(request, frozenset({"slot", "policy"}))
    slot = -1
    if "slot" in body:
        slot = _int_field(body, "slot", 0, SLOT_COUNT - 1, required=True)
    policy = body.get("policy", "middle")
    choices = {"middle": SplitChoice.MIDDLE_SLOT, "size": SplitChoice.HALF_BY_SIZE}
    if policy not in choices or (slot >= 0 and "policy" in body):
        raise BadRequestError('give "slot" or "policy" ("middle" or "size"), not both')
    command = RequestOperator(
        RequestKind.SPLIT,
        region_id,
        _actions(request).now_ms(),
        split_slot=slot,
        split_choice=choices[policy],
        reason=_reason(body),
    )
    return await _request(request, command)


async def post_merge(request: web.Request) -> web.Response:
    """`POST /v1/regions/{id}/merge`: into a neighbour (the right one by default)."""
    region_id = _id(request.match_info["id"], "region")
    body = await _body(request, frozenset({"into"}))
    into = _int_field(body, "into", 1, MAX_ID, required=False)
    now = _actions(request).now_ms()
    command = RequestOperator(
        RequestKind.MERGE, region_id, now, target_region_id=into, reason=_reason(body)
    )
    return await _request(request, command)


async def post_move(request: web.Request) -> web.Response:
    """`POST /v1/regions/{id}/move` `{"from": A, "to": B}`: one replica to another node."""
    region_id = _id(request.match_info["id"], "region")
    body = await _body(request, frozenset({"from", "to"}))
    src = _int_field(body, "from", 1, MAX_ID, required=True)
    dst = _int_field(body, "to", 1, MAX_ID, required=True)
    now = _actions(request).now_ms()
    command = RequestOperator(
        RequestKind.MOVE, region_id, now, from_node=src, to_node=dst, reason=_reason(body)
    )
    return await _request(request, command)


async def post_transfer(request: web.Request) -> web.Response:
    """`POST /v1/regions/{id}/transfer-leader` `{"to": N}`."""
    region_id = _id(request.match_info["id"], "region")
    body = await _body(request, frozenset({"to"}))
    dst = _int_field(body, "to", 1, MAX_ID, required=True)
    now = _actions(request).now_ms()
    command = RequestOperator(
        RequestKind.TRANSFER_LEADER, region_id, now, to_node=dst, reason=_reason(body)
    )
    return await _request(request, command)


async def post_undrain(request: web.Request) -> web.Response:
    """`POST /v1/nodes/{id}/undrain`: the node receives load again (cancels a drain)."""
    node_id = _id(request.match_info["id"], "node")
    body = await _body(request, frozenset())
    actions = _actions(request)
    why = _reason(body) or "undrain requested through the admin API"
    result = await actions.apply(SetNodeAdmin(node_id, NodeAdmin.ACTIVE, actions.now_ms(), why))
    if not isinstance(result, Ack):
        raise AdminError(f"unexpected result {type(result).__name__}")
    if not result.ok:
        if "unknown node" in result.reason:
            raise NotFoundError(f"node {node_id} is not a member of the cluster")
        raise RefusedError(result.reason)
    return _json({"ok": True, "message": f"node {node_id} is active: it receives load again"})


async def get_operator(request: web.Request) -> web.Response:
    """`GET /v1/operators/{id}`."""
    operator_id = _id(request.match_info["id"], "operator")
    op = await _actions(request).operator(operator_id)
    if op is None:
        raise NotFoundError(f"operator {operator_id} is not known (or left the history)")
    return _json(operator_to_json(op))


async def _request(request: web.Request, command: RequestOperator) -> web.Response:
    result = await _actions(request).apply(command)
    if not isinstance(result, RequestReply):
        raise AdminError(f"unexpected result {type(result).__name__}")
    if not result.ok:
        if result.reason.endswith("is not known"):
            raise NotFoundError(result.reason)
        raise RefusedError(result.reason)
    op = await _actions(request).operator(result.operator_id)
    body: Json = {"ok": True, "message": f"operator #{result.operator_id} started"}
    body["operator"] = (
        operator_to_json(op)
        if op is not None
        else {"id": result.operator_id, "description": result.description}
    )
    return _json(body, 202)


def operator_to_json(op: Operator) -> Json:
    """One operator as the API shows it."""
    return {
        "id": op.id,
        "region": op.region_id,
        "related_regions": list(op.related_region_ids),
        "kind": op.kind.value,
        "status": op.status.name.lower().replace("_", "-"),
        "steps": [describe_step(s) for s in op.steps],
        "step": op.step_index,
        "reason": op.reason,
        "outcome": op.outcome,
        "created_ms": op.created_ms,
        "finished_ms": op.finished_ms or None,
        "description": op.describe(),
    }


def _json(body: Json, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")) + "\n",
        status=status,
        content_type="application/json",
    )
