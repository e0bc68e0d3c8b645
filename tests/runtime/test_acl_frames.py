"""The ACL fields of peer frames: FORWARD's user and ACL_USERS, checked at the edge."""

from __future__ import annotations

import pytest

from cairn.runtime.acl_commands import AclCommands, AclTable, acl_key_info, node_catalog
from cairn.runtime.client_commands import CLIENT_COMMANDS
from cairn.runtime.frame_checks import check_acl_users, check_forward
from cairn.runtime.frames import FrameError, FrameKind
from cairn.shard.pubsub import PUBSUB_COMMANDS
from cairn.store import COMMANDS


def test_forward_carries_the_user_and_older_senders_mean_default() -> None:
    base = [FrameKind.FORWARD, 7, 2, [b"GET", b"k"], 1, 2, 3]
    assert check_forward([*base, "app"]).user == "app"
    assert check_forward(base).user == "default"
    assert check_forward(base[:4]).target is None
    with pytest.raises(FrameError):
        check_forward([*base, b"app"])  # not a string
    with pytest.raises(FrameError):
        check_forward([*base, "x" * 5000])  # over the name limit


def test_acl_users_frames_are_checked() -> None:
    version, users = check_acl_users([FrameKind.ACL_USERS, 3, [["app", "on ~a +@all"]]])
    assert version == 3 and users == [("app", "on ~a +@all")]
    for bad in (
        [FrameKind.ACL_USERS, -1, []],
        [FrameKind.ACL_USERS, 1, [["app"]]],
        [FrameKind.ACL_USERS, 1, [["app", 5]]],
        [FrameKind.ACL_USERS, 1, "nope"],
        [FrameKind.ACL_USERS, 1],
    ):
        with pytest.raises(FrameError):
            check_acl_users(bad)


class _Server:
    """What `AclCommands` reads of the client server: the password flag and clients."""

    password: str | None = None
    clients: dict[int, object] = {}


def test_the_leader_checks_a_forwarded_command_with_its_own_table() -> None:
    table = AclTable(node_catalog({**COMMANDS, **CLIENT_COMMANDS, **PUBSUB_COMMANDS}), None)
    acl = AclCommands(table, _Server(), lambda c, a: False, acl_key_info, str, lambda: 0)  # type: ignore[arg-type]
    table.adopt(1, [("app", "on nopass ~app:* resetchannels +@all")])
    assert acl.check_forwarded("app", [b"GET", b"app:1"]) is None
    denied = acl.check_forwarded("app", [b"GET", b"other"])
    assert denied is not None and denied.message.startswith("NOPERM")
    assert acl.check_forwarded("default", [b"GET", b"other"]) is None
    unknown = acl.check_forwarded("nobody", [b"GET", b"app:1"])  # deleted meanwhile
    assert unknown is not None and "'get' command" in unknown.message
    assert table.adopt(1, []) is None  # not newer: ignored
    assert table.adopt(2, []) == ["app"]  # deleted: its connections are closed
    assert acl.check_forwarded("app", [b"GET", b"app:1"]) is not None
