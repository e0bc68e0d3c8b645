"""The ACL fields of peer frames: FORWARD's user and ACL_USERS, checked at the edge."""

from __future__ import annotations

import pytest

from cairn.runtime.frame_checks import check_acl_users, check_forward
from cairn.runtime.frames import FrameError, FrameKind


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
