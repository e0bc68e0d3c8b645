"""The pure ACL logic: ACL SETUSER's rules and errors, the canonical description (the
expected strings are redis-server 7.0.15's ACL LIST output for the same rules), the
permission check and the log."""

from __future__ import annotations

import pytest

from cairn.runtime.acl_commands import node_catalog
from cairn.runtime.client_commands import CLIENT_COMMANDS
from cairn.shard.pubsub import PUBSUB_COMMANDS
from cairn.store import COMMANDS
from cairn.store.acl import (
    AclLog,
    AclRuleError,
    apply_rules,
    check,
    default_user,
    describe,
    hash_password,
    new_user,
    parse_description,
    unrestricted,
)

CATALOG = node_catalog({**COMMANDS, **CLIENT_COMMANDS, **PUBSUB_COMMANDS})
PW_HASH = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"

# rules -> redis-server 7.0.15's description (ACL LIST without "user <name> ").
REDIS_DESCRIPTIONS = [
    ("on >pw ~app:* +@all", f"on #{PW_HASH} ~app:* resetchannels +@all"),
    ("on nopass allkeys allchannels allcommands", "on nopass ~* &* +@all"),
    ("+@all -@dangerous", "off resetchannels +@all -@dangerous"),
    ("-@all +@read", "off resetchannels -@all +@read"),
    ("-@all +@read +@write", "off resetchannels -@all +@write +@read"),
    ("+@all -get +get", "off resetchannels +@all"),
    ("+@all -get", "off resetchannels +@all -get"),
    ("-@all +client", "off resetchannels -@all +client"),
    ("-@all +client|list", "off resetchannels -@all +client|list"),
    ("+@all -client|kill", "off resetchannels +@all -client|kill"),
    ("reset", "off sanitize-payload resetchannels -@all"),
    ("%R~r:* %W~w:* ~b %RW~c %R~b", "off %R~r:* %W~w:* ~b ~c resetchannels -@all"),
    ("&a &b* resetchannels &c", "off resetchannels &c -@all"),
    ("skip-sanitize-payload on", "on skip-sanitize-payload resetchannels -@all"),
    ("-@all +@hash +@list -lpush", "off resetchannels -@all +@hash +@list -lpush"),
    ("+@all -@write -@admin", "off resetchannels +@all -@write -@admin"),
    ("nocommands +@pubsub", "off resetchannels -@all +@pubsub"),
    ("-@all +@connection", "off resetchannels -@all +@connection"),
    ("-@all +@keyspace", "off resetchannels -@all +@keyspace"),
    ("-@all +@fast", "off resetchannels -@all +@fast"),
    ("+@all -@slow", "off resetchannels +@all -@slow"),
]


def _user(rules: str, name: str = "u"):  # type: ignore[no-untyped-def]
    return apply_rules(new_user(name), [r.encode() for r in rules.split()], CATALOG)


@pytest.mark.parametrize(("rules", "expected"), REDIS_DESCRIPTIONS)
def test_descriptions_are_redis_s(rules: str, expected: str) -> None:
    user = _user(rules)
    assert describe(user, CATALOG) == expected
    again = parse_description("u", expected, CATALOG)  # what every node adopts
    assert describe(again, CATALOG) == expected
    assert again.allowed == user.allowed and again.keys == user.keys


def test_single_commands_follow_names_where_redis_follows_its_hash_table() -> None:
    user = _user("-@all +set +get")
    assert describe(user, CATALOG) == "off resetchannels -@all +get +set"  # Redis: +set +get


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("+foo", "Unknown command or category name in ACL"),
        ("+@foo", "Unknown command or category name in ACL"),
        ("-select|0", "Unknown command or category name in ACL"),
        ("badrule", "Syntax error"),
        ("%X~a", "Syntax error"),
        ("%R", "Syntax error"),
        ("~a b", "Syntax error"),
        ("+client|", "Syntax error"),
        ("+client|list|x", "Allowing first-arg of a subcommand is not supported"),
        ("+select|0", "first-argument rules (command|argument) are not supported by Cairn"),
        ("(~x +get)", "selectors are not supported by Cairn"),
        (
            "#abc",
            "The password hash must be exactly 64 characters and contain only lowercase "
            "hexadecimal characters",
        ),
        ("<nope", "The password you are trying to remove from the user does not exist"),
    ],
)
def test_rule_errors_are_redis_s(rule: str, reason: str) -> None:
    with pytest.raises(AclRuleError) as caught:
        apply_rules(new_user("u"), [b"on", rule.encode()], CATALOG)
    assert str(caught.value) == f"Error in ACL SETUSER modifier '{rule}': {reason}"


def test_a_failed_setuser_changes_nothing() -> None:
    before = _user("on >pw ~a")
    with pytest.raises(AclRuleError):
        apply_rules(before, [b"off", b"~b", b"+nosuch"], CATALOG)
    assert before.enabled and before.keys == [(b"a", 3)]


def test_patterns_after_allkeys_or_allchannels_are_refused() -> None:
    with pytest.raises(AclRuleError, match="Try 'resetkeys'"):
        _user("allkeys ~x")
    with pytest.raises(AclRuleError, match="Try 'resetchannels'"):
        _user("allchannels &x")


def test_passwords_are_sha256_and_nopass_opens_any() -> None:
    user = _user(f"on >pw #{hash_password(b'other')} <pw")
    assert user.passwords == [hash_password(b"other")]
    assert user.check_password(b"other") and not user.check_password(b"pw")
    assert _user("on nopass").check_password(b"anything")
    assert not _user("off nopass").check_password(b"anything")


def test_the_check_refuses_commands_keys_and_channels() -> None:
    user = _user("on ~app:* %R~ro:* &news* -@all +@read +@write +publish +psubscribe")
    assert check(user, CATALOG, [b"get", b"app:1"], [b"app:1"], False) is None
    denied = check(user, CATALOG, [b"set", b"other"], [b"other"], True)
    assert denied is not None and denied.reason == "key" and denied.object == "other"
    assert denied.error_text() == (
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    )
    assert check(user, CATALOG, [b"get", b"ro:1"], [b"ro:1"], False) is None
    assert check(user, CATALOG, [b"set", b"ro:1", b"v"], [b"ro:1"], True) is not None
    denied = check(user, CATALOG, [b"info"], [], False)
    assert denied is not None and denied.error_text() == (
        "NOPERM this user has no permissions to run the 'info' command"
    )
    assert check(user, CATALOG, [b"publish", b"news1", b"m"], [], False) is None
    denied = check(user, CATALOG, [b"publish", b"sport", b"m"], [], False)
    assert denied is not None and denied.reason == "channel"
    # A pattern subscription must name one of the user's patterns literally.
    assert check(user, CATALOG, [b"psubscribe", b"news*"], [], False) is None
    assert check(user, CATALOG, [b"psubscribe", b"news1*"], [], False) is not None


def test_subcommands_are_checked_by_their_own_bit() -> None:
    user = _user("on allkeys +@all -client|kill")
    assert check(user, CATALOG, [b"client", b"list"], [], False) is None
    denied = check(user, CATALOG, [b"CLIENT", b"KILL", b"x"], [], False)
    assert denied is not None and denied.object == "client|kill"


def test_the_default_user_is_unrestricted_and_follows_the_password() -> None:
    assert describe(default_user(None, CATALOG), CATALOG) == "on nopass ~* &* +@all"
    configured = default_user("pw", CATALOG)
    assert describe(configured, CATALOG) == f"on #{PW_HASH} ~* &* +@all"
    assert unrestricted(configured, CATALOG)
    assert not unrestricted(_user("on ~* &* +@all -get"), CATALOG)


def test_the_log_groups_equal_entries_within_a_minute() -> None:
    log = AclLog(max_len=2)
    log.add("key", "k", "app", "id=1", 1_000)
    log.add("key", "k", "app", "id=2", 2_000)
    assert len(log.entries) == 1 and log.entries[0].count == 2
    assert log.entries[0].client_info == "id=2" and log.entries[0].updated_ms == 2_000
    log.add("key", "k", "app", "id=3", 70_000)  # older than a minute: a new entry
    log.add("auth", "auth", "app", "id=4", 70_001)
    assert [(e.reason, e.count) for e in log.entries] == [("auth", 1), ("key", 1)]
    log.reset()
    assert log.newest(10) == []
