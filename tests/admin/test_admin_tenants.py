"""The tenant endpoints of the admin API over a stand-in node whose placement group is a
`ClusterMetadata` in memory: create, list, delete, bad input, tokens, and `/metrics`."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from admin_support import READ_TOKEN, http, placement_source, sample_driver, write_test_tokens

from cairn.admin import AdminServer
from cairn.admin.access import Access
from cairn.admin.metrics import MetricsSnapshot, render
from cairn.admin.tenants_api import NodeTenants, tenant_metrics
from cairn.placement.commands import Command
from cairn.placement.metadata import ClusterMetadata
from cairn.placement.tenants import TenantSpec, TenantState
from cairn.runtime.acl_commands import acl_key_info, node_catalog
from cairn.runtime.tenants import NodeTenants as NodeQuotas
from cairn.store import COMMANDS
from cairn.store.acl import parse_description


class _Placement:
    def __init__(self) -> None:
        self.metadata = ClusterMetadata()

    def propose(self, commands: Sequence[Command], answer: Any, timeout: float) -> bool:
        answer(tuple(self.metadata.apply(c) for c in commands))
        return True


def _node() -> Any:
    quotas = NodeQuotas(1, lambda c, a: False, list, acl_key_info, lambda: 0.0)
    return SimpleNamespace(
        placement=_Placement(),
        config=SimpleNamespace(node_id=1, limits=SimpleNamespace(request_timeout_ms=1000)),
        acl=SimpleNamespace(table=SimpleNamespace(catalog=node_catalog(COMMANDS))),
        tenants=quotas,
    )


@contextmanager
def _served(node: Any) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        access = Access.open(write_test_tokens(Path(tmp) / "tokens.json"))
        source = placement_source(sample_driver())
        server = AdminServer(source, "127.0.0.1", 0, access=access, tenants=NodeTenants(node))
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
            host, port = server.address
            yield f"http://{host}:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def _post(base: str, body: object) -> tuple[int, Any]:
    status, _, doc = http("POST", base + "/v1/tenants", json.dumps(body).encode())
    return status, doc


def test_create_list_delete() -> None:
    node = _node()
    with _served(node) as base:
        status, doc = _post(base, {"name": "acme", "prefix": "app:", "max_keys": 5})
        assert status == 201 and len(doc["password"]) == 48, doc
        metadata = cast(_Placement, node.placement).metadata
        rules = metadata.acl_users["acme"]
        assert doc["password"] not in rules  # stored hashed
        user = parse_description("acme", rules, node.acl.table.catalog)
        assert user.check_password(doc["password"].encode())
        status, doc = _post(base, {"name": "acme", "prefix": "x:", "password": "p" * 16})
        assert status == 409 and doc["error"]["message"] == "tenant 'acme' exists"
        assert "password" not in _post(base, {"name": "b", "prefix": "b:", "password": "p" * 16})[1]
        status, _, listing = http("GET", base + "/v1/tenants", token=READ_TOKEN)
        assert status == 200
        assert [t["name"] for t in listing["tenants"]] == ["acme", "b"]
        assert listing["tenants"][0] | {"node_refusals": {}} == {
            "name": "acme",
            "prefix": "app:",
            "max_keys": 5,
            "max_bytes": 0,
            "max_ops": 0,
            "keys": 0,
            "bytes": 0,
            "regions_reported": 0,
            "over_quota": None,
            "node_ops": 0,
            "node_refusals": {},
        }
        assert set(node.tenants.states) == {"acme", "b"}  # the node adopted the table
        assert http("DELETE", base + "/v1/tenants/acme", b"{}")[0] == 200
        assert "acme" not in metadata.acl_users and "acme" not in metadata.tenants.specs
        status, _, doc = http("DELETE", base + "/v1/tenants/acme", b"{}")
        assert status == 404 and doc["error"]["message"] == "no tenant 'acme'"


def test_bad_input_and_a_read_token_are_refused() -> None:
    with _served(_node()) as base:
        for body, text in (
            ([], "the body must be a JSON object"),
            ({"name": "a"}, '"name" and "prefix" are required strings'),
            ({"name": "a", "prefix": "p", "max_keys": -1}, '"max_keys" must be an integer'),
            ({"name": "a", "prefix": "p", "max_ops": True}, '"max_ops" must be an integer'),
            ({"name": "a", "prefix": "p*"}, "invalid key prefix"),
            ({"name": "a", "prefix": "p", "password": "short"}, '"password" must be'),
            ({"name": "a", "prefix": "p", "color": 1}, "unknown fields: color"),
        ):
            status, doc = _post(base, body)
            assert status == 400 and text in doc["error"]["message"], (body, doc)
        status, _, _ = http(
            "POST", base + "/v1/tenants", b'{"name": "a", "prefix": "p"}', token=READ_TOKEN
        )
        assert status == 403


def test_metrics_families() -> None:
    node = _node()
    quotas: NodeQuotas = node.tenants
    quotas.adopt([TenantState(TenantSpec("acme", "app:", 10, 0, 1), keys=12, bytes=300)])
    quotas.check("acme", [b"GET", b"app:1"])
    quotas.check("acme", [b"SET", b"app:1", b"v"])
    snapshot = MetricsSnapshot(1, 1.0, 0, 0, 0, tenants=tenant_metrics(quotas))
    text = render(snapshot).decode()
    for line in (
        'cairn_tenant_keys{node="1",tenant="acme"} 12.0',
        'cairn_tenant_bytes{node="1",tenant="acme"} 300.0',
        'cairn_tenant_quota{node="1",quota="max-keys",tenant="acme"} 10.0',
        'cairn_tenant_ops_total{node="1",tenant="acme"} 2.0',
        'cairn_tenant_refusals_total{node="1",quota="max-ops",tenant="acme"} 1.0',
        'cairn_tenant_refusals_total{node="1",quota="max-keys",tenant="acme"} 0.0',
    ):
        assert line in text, text
