"""Tenants in the placement metadata: creation with the user, usage sums, quota decisions."""

from __future__ import annotations

import pytest

from cairn.placement.commands import (
    Ack,
    DelTenant,
    ReportTenantUsage,
    SetAclUser,
    SetTenant,
    TenantTable,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)
from cairn.placement.metadata import ClusterMetadata
from cairn.placement.tenants import (
    RegionUsage,
    TenantBook,
    TenantError,
    TenantSpec,
    TenantState,
    TenantUsage,
    TokenBucket,
    quota_error,
    sum_usage,
    user_rules,
)

ACME = TenantSpec("acme", "acme:", max_keys=10, max_bytes=1000, max_ops=5)


def test_create_makes_the_tenant_and_its_user_in_one_command() -> None:
    md = ClusterMetadata()
    assert md.apply(SetTenant(ACME, "on ~acme:* +@all", 1)) == Ack(True)
    assert md.tenants.specs == {"acme": ACME}
    assert md.acl_users == {"acme": "on ~acme:* +@all"} and md.acl_version == 1
    again = md.apply(SetTenant(ACME, "on", 2))
    assert again == Ack(False, "tenant 'acme' exists") and md.acl_version == 1


def test_create_refuses_a_user_name_overlapping_prefix_or_bad_spec() -> None:
    md = ClusterMetadata()
    md.apply(SetAclUser("bob", "on", "", 1))
    refused = md.apply(SetTenant(TenantSpec("bob", "bob:"), "on", 2))
    assert refused == Ack(False, "an ACL user named 'bob' exists")
    md.apply(SetTenant(ACME, "on", 3))
    overlap = md.apply(SetTenant(TenantSpec("sub", "acme:x"), "on", 4))
    assert overlap == Ack(False, "prefix 'acme:x' overlaps tenant prefix 'acme:'")
    bad = md.apply(SetTenant(TenantSpec("x y", "p"), "on", 5))
    assert isinstance(bad, Ack) and not bad.ok and "invalid tenant name" in bad.reason
    assert set(md.tenants.specs) == {"acme"} and set(md.acl_users) == {"bob", "acme"}


def test_delete_removes_tenant_and_user() -> None:
    md = ClusterMetadata()
    md.apply(SetTenant(ACME, "on", 1))
    assert md.apply(DelTenant("acme", 2)) == Ack(True)
    assert md.tenants.specs == {} and md.acl_users == {} and md.acl_version == 2
    assert md.apply(DelTenant("acme", 3)) == Ack(False, "no tenant 'acme'")


def test_report_answers_the_table_and_survives_a_snapshot() -> None:
    md = ClusterMetadata()
    md.apply(SetTenant(ACME, "on", 1))
    result = md.apply(ReportTenantUsage(1, (), 2))
    assert result == TenantTable((TenantState(ACME),))
    assert decode_result(encode_result(result)) == result
    command = ReportTenantUsage(1, (RegionUsage(7, (TenantUsage("acme", 3, 40),)),), 3)
    assert decode_command(encode_command(command)) == command
    other = ClusterMetadata()
    other.restore(md.snapshot())
    assert other.tenants.specs == md.tenants.specs and other.snapshot() == md.snapshot()


def test_usage_sums_the_latest_report_of_each_live_region() -> None:
    book = TenantBook()
    book.specs["acme"] = ACME
    book.report((RegionUsage(1, (TenantUsage("acme", 3, 30), TenantUsage("gone", 9, 9))),), {1, 2})
    book.report((RegionUsage(2, (TenantUsage("acme", 4, 40),)),), {1, 2})
    book.report((RegionUsage(1, (TenantUsage("acme", 5, 50),)),), {1, 2})  # replaces 3
    assert book.table() == (TenantState(ACME, 9, 90, 2),)
    book.specs["beta"] = TenantSpec("beta", "b:")
    book.report((RegionUsage(2, (TenantUsage("beta", 1, 5),)),), {1, 2})  # acme kept
    assert book.table() == (TenantState(ACME, 9, 90, 2), TenantState(book.specs["beta"], 1, 5, 1))
    del book.specs["beta"]
    book.report((), {2})  # region 1 merged away
    assert book.table() == (TenantState(ACME, 4, 40, 1),)
    assert sum_usage({}, book.usage.values()) == ()


def test_over_quota_at_the_limit_and_the_error_texts() -> None:
    assert TenantState(ACME, 9, 999).over_quota() is None
    assert TenantState(ACME, 10, 0).over_quota() == "max-keys"
    assert TenantState(ACME, 0, 1000).over_quota() == "max-bytes"
    assert TenantState(TenantSpec("free", "f:"), 10**9, 10**12).over_quota() is None
    state = TenantState(ACME, 12, 0)
    assert quota_error(state, "max-keys") == (
        "ERR tenant 'acme' is over its max-keys quota (10; 12 used): delete keys to write again"
    )
    assert quota_error(state, "max-ops") == (
        "ERR tenant 'acme' is over its max-ops quota (5/s on this node)"
    )


def test_spec_validation() -> None:
    ACME.validate()
    for bad in (
        TenantSpec("default", "p"),
        TenantSpec("a", "p*"),
        TenantSpec("a", ""),
        TenantSpec("a", "p", max_keys=-1),
    ):
        with pytest.raises(TenantError):
            bad.validate()
    assert user_rules("acme:") == ("on", "~acme:*", "&acme:*", "+@all", "-@admin", "-@dangerous")


def test_token_bucket_refills_at_its_rate_up_to_one_second() -> None:
    bucket = TokenBucket.full(2, 0.0)
    ok1, bucket = bucket.take(0.0)
    ok2, bucket = bucket.take(0.0)
    ok3, bucket = bucket.take(0.1)
    assert (ok1, ok2, ok3) == (True, True, False)
    ok4, bucket = bucket.take(0.5)  # 0.5 s at 2/s: one token back
    assert ok4
    ok5, bucket = bucket.take(100.0)
    assert ok5 and bucket.tokens == 1.0  # never more than one second's worth
