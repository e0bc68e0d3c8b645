"""A node's tenant side without a cluster: usage counting in a region's machine, and the
quota decisions of `NodeTenants.check`."""

from __future__ import annotations

import asyncio

from store_harness import MachineClient

from cairn.placement.commands import ReportTenantUsage, TenantTable
from cairn.placement.tenants import RegionUsage, TenantSpec, TenantState, TenantUsage
from cairn.resp.reply import ErrorReply
from cairn.runtime.acl_commands import acl_key_info
from cairn.runtime.tenants import NodeTenants, region_usage
from cairn.store.machine import StoreMachine
from cairn.store.scope import Scope

ACME = TenantSpec("acme", "app:", max_keys=2, max_bytes=0, max_ops=3)


def _client() -> MachineClient:
    return MachineClient(lambda: 1000, StoreMachine(scope=Scope.region(1)))


def test_region_usage_counts_the_prefix_keys_and_their_records() -> None:
    c = _client()
    c.call("SET", "app:1", "abc")
    c.call("SET", "other:1", "abcdef")
    c.call("SET", "app", "x")  # the prefix is "app:", not "app"
    prefixes = {"acme": b"app:", "none": b"zzz:"}
    (acme, none) = region_usage(c.machine, prefixes)
    assert none == TenantUsage("none", 0, 0)
    assert acme.name == "acme" and acme.keys == 1
    small = acme.bytes
    assert small >= len(b"app:1abc")
    c.call("HSET", "app:h", "field", "value")
    (acme, _) = region_usage(c.machine, prefixes)
    assert acme.keys == 2 and acme.bytes >= small + len(b"app:hfieldvalue")
    c.call("DEL", "app:1", "app:h")
    assert region_usage(c.machine, prefixes)[0] == TenantUsage("acme", 0, 0)


def test_region_usage_pages_through_many_keys() -> None:
    c = _client()
    for i in range(1200):
        c.call("SET", f"app:{i}", "v")
    assert region_usage(c.machine, {"acme": b"app:"})[0].keys == 1200


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _tenants(clock: _Clock, proposals: list[ReportTenantUsage]) -> NodeTenants:
    def propose(commands: object, answer: object) -> bool:
        (command,) = commands  # type: ignore[misc]
        proposals.append(command)
        answer((TenantTable((TenantState(ACME, 2, 10, 1),)),))  # type: ignore[operator]
        return True

    machine = _client().machine
    return NodeTenants(7, propose, lambda: [(1, machine)], acl_key_info, clock)


def test_over_quota_refuses_writes_but_not_reads_or_removals() -> None:
    clock, proposals = _Clock(), []
    tenants = _tenants(clock, proposals)
    assert tenants.check("acme", [b"SET", b"app:1", b"v"]) is None  # unknown yet
    tenants.report_now()
    sent = proposals[0]
    assert sent.node_id == 7 and sent.regions == ()  # knew no tenant: counted nothing
    tenants.report_now()
    assert proposals[1].regions == (RegionUsage(1, (TenantUsage("acme", 0, 0),)),)
    refused = tenants.check("acme", [b"SET", b"app:1", b"v"])
    assert refused == ErrorReply(
        "ERR tenant 'acme' is over its max-keys quota (2; 2 used): delete keys to write again"
    )
    clock.now = 10.0
    assert tenants.check("acme", [b"GET", b"app:1"]) is None
    assert tenants.check("acme", [b"DEL", b"app:1"]) is None
    assert tenants.check("other", [b"SET", b"app:1", b"v"]) is None
    assert tenants.refusals[("acme", "max-keys")] == 1


def test_max_ops_is_a_per_node_bucket() -> None:
    clock, proposals = _Clock(), []
    tenants = _tenants(clock, proposals)
    tenants.adopt([TenantState(ACME)])
    replies = [tenants.check("acme", [b"GET", b"app:1"]) for _ in range(5)]
    assert replies[:3] == [None, None, None]
    assert replies[3] == ErrorReply(
        "ERR tenant 'acme' is over its max-ops quota (3/s on this node)"
    )
    clock.now = 1.0
    assert tenants.check("acme", [b"GET", b"app:1"]) is None
    assert tenants.ops["acme"] == 6 and tenants.refusals[("acme", "max-ops")] == 2
    tenants.adopt([])
    assert tenants.check("acme", [b"GET", b"app:1"]) is None  # deleted: no quota
    assert not tenants.ops and not tenants.refusals


def test_a_node_without_tenants_reports_only_until_it_learns_the_table() -> None:
    """Each report is a placement-group write: an idle node must not write one a second,
    but a report that failed (no placement leader yet) is tried again."""
    sent: list[object] = []
    accept = [False]

    def propose(commands: tuple[object, ...], answer: object) -> bool:
        sent.append(commands[0])
        if accept[0]:
            answer((TenantTable(()),))  # type: ignore[operator]
        return accept[0]

    async def run() -> None:
        tenants = NodeTenants(7, propose, lambda: [], acl_key_info, lambda: 0.0, 0.01)
        tenants.start()
        await asyncio.sleep(0.05)  # the placement group cannot be reached: retried
        tried = len(sent)
        assert tried >= 2
        accept[0] = True
        await asyncio.sleep(0.05)  # learned (no tenant): then quiet
        learned = len(sent)
        assert learned > tried
        await asyncio.sleep(0.08)
        assert len(sent) == learned, "a node with no tenant kept writing reports"
        tenants.report_now()  # the users changed: ask again, once
        assert len(sent) == learned + 1
        await asyncio.sleep(0.05)
        assert len(sent) == learned + 1
        tenants.stop()

    asyncio.run(run())
