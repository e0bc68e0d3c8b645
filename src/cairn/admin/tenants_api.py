"""The admin API's tenant endpoints: list, create and delete tenants (`cairn ctl tenant`).

    GET    /v1/tenants          every tenant: prefix, quotas, cluster-wide usage, this
                                node's operations and refusals
    POST   /v1/tenants          {"name", "prefix", "max_keys", "max_bytes", "max_ops",
                                 "password"?}: create the tenant and its ACL user; without
                                 a password one is generated and answered, once
    DELETE /v1/tenants/{name}   delete the tenant and its ACL user

The usage GET answers is the placement group's (the answer to an empty usage report, so
it is as fresh as the regions' latest reports), not a node's cached copy. The password is
sent to the placement group only as the ACL user's SHA-256 (`cairn.store.acl`), never in
clear, and is never answered again. See `cairn.placement.tenants` for the design.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cairn.admin.json_body import parse_json_body
from cairn.admin.metrics import TenantMetrics
from cairn.admin.source import AdminError, BadRequestError, NotFoundError, SourceUnavailableError
from cairn.placement.commands import (
    Ack,
    Command,
    DelTenant,
    ReportTenantUsage,
    Result,
    SetTenant,
    TenantTable,
)
from cairn.placement.tenants import (
    MAX_QUOTA,
    NAME_PATTERN,
    TenantError,
    TenantSpec,
    TenantState,
    user_rules,
)
from cairn.store.acl import AclRuleError, apply_rules, describe, new_user

if TYPE_CHECKING:
    from cairn.runtime.node import Node
    from cairn.runtime.tenants import NodeTenants as NodeQuotas

MIN_PASSWORD = 16
MAX_PASSWORD = 512
GENERATED_PASSWORD_BYTES = 24
_QUOTA_FIELDS = ("max_keys", "max_bytes", "max_ops")


class ConflictError(AdminError):
    """The placement group refused the change (the tenant exists, a prefix overlaps)."""

    status = 409
    code = "conflict"


class NodeTenants:
    """A node's tenant actions for the admin API (all through the placement group)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def _apply(self, command: Command) -> Result:
        """The placement group's result of `command` (503 when it cannot answer)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Result, ...] | None] = loop.create_future()

        def answer(results: tuple[Result, ...] | None) -> None:
            if not future.done():
                future.set_result(results)

        placement = self.node.placement
        timeout = self.node.config.limits.request_timeout_ms / 1000
        if placement is None or not placement.propose((command,), answer, timeout):
            raise SourceUnavailableError("the placement group is not reachable from this node")
        results = await future
        if not results:
            raise SourceUnavailableError("the placement group did not answer in time: retry")
        return results[0]

    async def table(self) -> tuple[TenantState, ...]:
        """Every tenant with its cluster-wide usage (also adopted by this node)."""
        result = await self._apply(ReportTenantUsage(self.node.config.node_id, (), _now_ms()))
        if not isinstance(result, TenantTable):
            raise SourceUnavailableError("the placement group answered no tenant table")
        self.node.tenants.adopt(result.tenants)
        return result.tenants

    async def create(self, spec: TenantSpec, password: str) -> None:
        """Create `spec` and its user with `password` (409 when refused)."""
        catalog = self.node.acl.table.catalog
        rules = [r.encode() for r in user_rules(spec.prefix)] + [b">" + password.encode()]
        try:
            user = apply_rules(new_user(spec.name), rules, catalog)
        except AclRuleError as exc:
            raise BadRequestError(f"cannot make the tenant's user: {exc}") from None
        result = await self._apply(SetTenant(spec, describe(user, catalog), _now_ms()))
        _check(result)
        self.node.tenants.report_now()

    async def delete(self, name: str) -> None:
        """Delete tenant `name` and its user (404 when there is none)."""
        result = await self._apply(DelTenant(name, _now_ms()))
        if isinstance(result, Ack) and not result.ok and result.reason.startswith("no tenant"):
            raise NotFoundError(result.reason)
        _check(result)
        self.node.tenants.report_now()

    def to_json(self, state: TenantState) -> dict[str, Any]:
        """A tenant as `GET /v1/tenants` shows it (this node's counters included)."""
        spec, local = state.spec, self.node.tenants
        return {
            "name": spec.name,
            "prefix": spec.prefix,
            "max_keys": spec.max_keys,
            "max_bytes": spec.max_bytes,
            "max_ops": spec.max_ops,
            "keys": state.keys,
            "bytes": state.bytes,
            "regions_reported": state.regions,
            "over_quota": state.over_quota(),
            "node_ops": local.ops[spec.name],
            "node_refusals": {q: n for (t, q), n in local.refusals.items() if t == spec.name},
        }


def tenant_metrics(quotas: NodeQuotas) -> tuple[TenantMetrics, ...]:
    """The `/metrics` figures of every tenant a node knows."""
    return tuple(
        TenantMetrics(
            name=f.state.spec.name,
            keys=f.state.keys,
            bytes=f.state.bytes,
            quotas=(
                ("max-keys", f.state.spec.max_keys),
                ("max-bytes", f.state.spec.max_bytes),
                ("max-ops", f.state.spec.max_ops),
            ),
            ops=f.ops,
            refusals=tuple(sorted(f.refusals.items())),
        )
        for f in quotas.figures()
    )


def _check(result: Result) -> None:
    if not isinstance(result, Ack):
        raise SourceUnavailableError("the placement group answered something unexpected")
    if not result.ok:
        raise ConflictError(result.reason)


def _now_ms() -> int:
    return int(time.time() * 1000)


def spec_from_json(body: Any) -> tuple[TenantSpec, str | None]:
    """The tenant and password (None: generate one) a POST body asks for (400 if bad)."""
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = set(body) - {"name", "prefix", "password", *_QUOTA_FIELDS}
    if unknown:
        raise BadRequestError(f"unknown fields: {', '.join(sorted(unknown))}")
    name, prefix, password = body.get("name"), body.get("prefix"), body.get("password")
    if not isinstance(name, str) or not isinstance(prefix, str):
        raise BadRequestError('"name" and "prefix" are required strings')
    quotas = []
    for key in _QUOTA_FIELDS:
        value = body.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_QUOTA:
            raise BadRequestError(f'"{key}" must be an integer from 0 (unlimited) to {MAX_QUOTA}')
        quotas.append(value)
    if password is not None and (
        not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD
    ):
        raise BadRequestError(
            f'"password" must be a string of {MIN_PASSWORD} to {MAX_PASSWORD} characters'
        )
    spec = TenantSpec(name, prefix, *quotas)
    try:
        spec.validate()
    except TenantError as exc:
        raise BadRequestError(str(exc)) from None
    return spec, password


TENANTS_KEY = web.AppKey("tenants", NodeTenants)


async def get_tenants(request: web.Request) -> web.Response:
    """`GET /v1/tenants`."""
    tenants = request.app[TENANTS_KEY]
    states = await tenants.table()
    return web.json_response({"tenants": [tenants.to_json(s) for s in states]})


async def post_tenant(request: web.Request) -> web.Response:
    """`POST /v1/tenants`: create a tenant (answers its password once if generated)."""
    body = parse_json_body(await request.read(), required=True)
    spec, password = spec_from_json(body)
    generated = password is None
    if password is None:
        password = secrets.token_hex(GENERATED_PASSWORD_BYTES)
    await request.app[TENANTS_KEY].create(spec, password)
    answer: dict[str, Any] = {"ok": True, "name": spec.name, "prefix": spec.prefix}
    if generated:
        answer["password"] = password
    return web.json_response(answer, status=201)


async def delete_tenant(request: web.Request) -> web.Response:
    """`DELETE /v1/tenants/{name}`."""
    name = request.match_info["name"]
    if NAME_PATTERN.fullmatch(name) is None:
        raise NotFoundError(f"no tenant '{name[:40]}'")
    await request.app[TENANTS_KEY].delete(name)
    return web.json_response({"ok": True, "message": f"tenant '{name}' deleted"})


def add_routes(app: web.Application, tenants: NodeTenants) -> None:
    """Serve the tenant endpoints of `tenants` on `app`."""
    app[TENANTS_KEY] = tenants
    app.router.add_get("/v1/tenants", get_tenants)
    app.router.add_post("/v1/tenants", post_tenant)
    app.router.add_delete("/v1/tenants/{name}", delete_tenant)
