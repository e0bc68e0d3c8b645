"""ACL users in the placement metadata: compare-and-set, deletion, snapshots, the wire."""

from __future__ import annotations

from cairn.placement.commands import (
    Ack,
    AclDeleted,
    DelAclUsers,
    SetAclUser,
    decode_command,
    encode_command,
)
from cairn.placement.metadata import ClusterMetadata


def test_set_is_compare_and_set_on_the_description_it_changed() -> None:
    md = ClusterMetadata()
    assert md.apply(SetAclUser("app", "on nopass", "", 1)) == Ack(True)
    assert md.acl_version == 1
    stale = md.apply(SetAclUser("app", "off", "", 2))  # made from a view without "app"
    assert stale == Ack(False, "changed concurrently")
    assert md.acl_users == {"app": "on nopass"} and md.acl_version == 1
    assert md.apply(SetAclUser("app", "off", "on nopass", 3)) == Ack(True)
    assert md.acl_users == {"app": "off"} and md.acl_version == 2


def test_delete_counts_the_users_it_removed() -> None:
    md = ClusterMetadata()
    md.apply(SetAclUser("a", "on", "", 1))
    md.apply(SetAclUser("b", "on", "", 1))
    assert md.apply(DelAclUsers(("a", "nobody", "a"), 2)) == AclDeleted(1)
    assert md.acl_users == {"b": "on"} and md.acl_version == 3
    assert md.apply(DelAclUsers(("nobody",), 3)) == AclDeleted(0)
    assert md.acl_version == 3  # nothing changed: nodes need no new table


def test_users_survive_a_snapshot() -> None:
    md = ClusterMetadata()
    md.apply(SetAclUser("app", "on ~app:* +@all", "", 1))
    other = ClusterMetadata()
    other.restore(md.snapshot())
    assert other.acl_users == md.acl_users and other.acl_version == md.acl_version
    assert other.snapshot() == md.snapshot()


def test_the_commands_travel() -> None:
    for command in (SetAclUser("u", "on", "", 5), DelAclUsers(("u", "v"), 6)):
        assert decode_command(encode_command(command)) == command
