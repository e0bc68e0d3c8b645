"""Tenants on a live 3-node cluster: created with `cairn ctl`, confined to their prefix,
refused over their key quota (within a bounded overshoot: usage lags by the report
interval) and over their per-node operation rate, freed by DEL, listed, and deleted."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from cluster_fixture import running_cluster
from store_harness import RawRedis

from cairn.admin.client import AdminClient
from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST, LocalCluster

MAX_KEYS = 20
OVERSHOOT_LIMIT = 200
"""At ~30 writes a second, WAIT's worth of writes past the quota, at most."""
"""Writes a tenant may land past its quota before the tables show it (report lag)."""
NOPERM_KEY = b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
WAIT = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("tenants")
    with running_cluster(root, limits={"tenant_report_ms": 150}) as c:
        yield c


def _ctl(cluster: LocalCluster, *args: str) -> Result:
    endpoints = [a for s in cluster.specs for a in ("-e", f"{HOST}:{s.admin_port}")]
    token = ["--token", str(cluster.admin_token)]
    return CliRunner().invoke(main, ["ctl", *endpoints, *token, *args])


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.05)


def _login(cluster: LocalCluster, node: int, password: str) -> RawRedis | None:
    conn = RawRedis(cluster.spec(node).client_port)
    if conn.call([b"AUTH", b"acme", password.encode()]) == b"+OK\r\n":
        return conn
    conn.close()
    return None


def test_a_tenant_is_confined_and_refused_over_its_quotas(cluster: LocalCluster) -> None:
    created = _ctl(
        cluster,
        "tenant",
        "create",
        "acme",
        "--prefix",
        "app:",
        "--max-keys",
        str(MAX_KEYS),
        "--max-ops",
        "40",
        "--json",
    )
    assert created.exit_code == 0, created.output
    password = json.loads(created.output)["password"]
    again = _ctl(cluster, "tenant", "create", "acme", "--prefix", "zzz:")
    assert again.exit_code == 2 and "tenant 'acme' exists" in again.output
    bad = _ctl(cluster, "tenant", "create", "b", "--prefix", "app:*")
    assert bad.exit_code == 2 and "invalid key prefix" in bad.output

    logged: list[RawRedis] = []

    def login() -> bool:
        conn = _login(cluster, 2, password)
        if conn is not None:
            logged.append(conn)
        return conn is not None

    _until(login, "acme authenticates on node 2")
    conn = logged[0]
    assert conn.call([b"SET", b"other:1", b"x"]) == NOPERM_KEY

    # Writes until refused: usage reaches the node a few report intervals after the
    # writes, so the refusal comes within a bounded time (WAIT), the overshoot being what
    # the writes of that lag add (bounded too: max-ops caps their rate).
    refused = b""
    written = 0
    deadline = time.monotonic() + WAIT
    while written < MAX_KEYS or time.monotonic() < deadline:
        reply = conn.call([b"SET", b"app:%d" % written, b"v"])
        if reply != b"+OK\r\n":
            refused = reply
            break
        written += 1
        if written == MAX_KEYS:
            deadline = time.monotonic() + WAIT  # from when the quota is reached
        time.sleep(0.03)  # under max-ops
    assert written <= MAX_KEYS + OVERSHOOT_LIMIT, f"{written} keys written past the quota"
    assert refused.startswith(b"-ERR tenant 'acme' is over its max-keys quota (20; "), refused
    assert written >= MAX_KEYS, "refused before reaching the quota"
    assert conn.call([b"GET", b"app:0"]) == b"$1\r\nv\r\n"  # reads pass
    assert conn.call([b"EXISTS", b"app:%d" % written]) == b":0\r\n"  # nothing half-written

    rows: list[dict[str, Any]] = []

    def listed() -> bool:
        listing = _ctl(cluster, "tenant", "list", "--json")
        assert listing.exit_code == 0, listing.output
        rows[:] = json.loads(listing.output)["tenants"]
        return rows[0]["keys"] == written  # once the reports count the last writes

    _until(listed, f"the listing counts {written} keys")
    assert rows[0]["over_quota"] == "max-keys" and rows[0]["bytes"] > 0, rows

    # DEL frees the quota (after the next reports).
    assert conn.call([b"DEL", *(b"app:%d" % i for i in range(written))]) == b":%d\r\n" % written
    _until(lambda: conn.call([b"SET", b"app:again", b"v"]) == b"+OK\r\n", "writes again")

    # A burst past max-ops on one node is refused.
    client = redis.Redis(
        host=HOST, port=cluster.spec(3).client_port, username="acme", password=password
    )
    pipe = client.pipeline(transaction=False)
    for _ in range(100):
        pipe.get("app:again")
    replies = pipe.execute(raise_on_error=False)
    over = [r for r in replies if isinstance(r, redis.ResponseError)]
    assert over and str(over[0]) == "tenant 'acme' is over its max-ops quota (40/s on this node)"
    assert len(over) < 100
    client.close()
    text = AdminClient(
        [f"{HOST}:{cluster.spec(2).admin_port}"], token=cluster.admin_token
    ).metrics()
    refusals = re.search(
        r'cairn_tenant_refusals_total\{node="2",quota="max-keys",tenant="acme"\} (\d+)', text
    )
    assert refusals is not None and int(refusals.group(1)) >= 1, text
    assert 'cairn_tenant_quota{node="2",quota="max-keys",tenant="acme"} 20.0' in text
    assert 'cairn_tenant_keys{node="2",tenant="acme"}' in text
    print(f"refused after {written} keys (quota {MAX_KEYS})")

    deleted = _ctl(cluster, "tenant", "delete", "acme")
    assert deleted.exit_code == 0, deleted.output
    _until(lambda: _login(cluster, 1, password) is None, "acme is gone on node 1")
    missing = _ctl(cluster, "tenant", "delete", "acme")
    assert missing.exit_code == 2 and "no tenant 'acme'" in missing.output
    conn.close()
