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
from cairn.store.acl.selector import split_args
from cairn.store.acl.user import MAX_SELECTORS

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


# rules -> redis-server 7.0.15's ACL LIST description, with selectors and first arguments.
REDIS_SELECTOR_DESCRIPTIONS = [
    (
        "on nopass (~app:* +get) (%W~log:* +set)",
        "on nopass resetchannels -@all (~app:* resetchannels -@all +get) "
        "(%W~log:* resetchannels -@all +set)",
    ),
    (
        "+select|0 +select|AbC -client|kill +select|0",
        "off resetchannels -@all +select|0 +select|AbC",
    ),
    ("+@all -get +get|x +get|y +get|X", "off resetchannels +@all -get +get|x +get|y"),
    ("+get +get|x -get", "off resetchannels -@all"),
    ("+get|x -@string", "off resetchannels -@all"),
    ("+get|x -@hash", "off resetchannels -@all +get|x"),
    ("+get|x allcommands", "off resetchannels +@all"),
    (
        "~r:* &c1 +get (~w:* &c2* +@write -del) (&* ~* +@all -@dangerous)",
        "off ~r:* resetchannels &c1 -@all +get (~w:* resetchannels &c2* -@all +@write -del) "
        "(~* &* +@all -@dangerous)",
    ),
    ("(~a ~b) clearselectors (resetkeys ~c)", "off resetchannels -@all (~c resetchannels -@all)"),
    ('(~a"b +get)', "off resetchannels -@all (resetchannels -@all)"),  # unbalanced quote
    ('("~x\\x41" "+get")', "off resetchannels -@all (~xA resetchannels -@all +get)"),
    ("+get|x (+get|y) reset", "off sanitize-payload resetchannels -@all"),
    (
        "(%R~r:* %W~r:* %W~w:*  +@read)",
        "off resetchannels -@all (~r:* %W~w:* resetchannels -@all +@read)",
    ),
    (
        "-@all +@hash +hget|f (+@all -@hash +hset|x)",
        "off resetchannels -@all +@hash (resetchannels +@all -@hash +hset|x)",
    ),
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


@pytest.mark.parametrize(("rules", "expected"), REDIS_SELECTOR_DESCRIPTIONS)
def test_selector_descriptions_are_redis_s_and_read_back(rules: str, expected: str) -> None:
    user = apply_rules(new_user("u"), [r.encode() for r in rules.split(" ")], CATALOG)
    assert describe(user, CATALOG) == expected
    again = parse_description("u", expected, CATALOG)  # what every node adopts
    assert describe(again, CATALOG) == expected
    assert len(again.selectors) == len(user.selectors)
    for theirs, ours in zip((again, *again.selectors), (user, *user.selectors), strict=True):
        assert (theirs.allowed, theirs.keys, theirs.channels) == (
            ours.allowed,
            ours.keys,
            ours.channels,
        )
        assert theirs.firstargs == ours.firstargs


def test_selectors_are_bounded() -> None:
    groups = [b"(~k%d +get)" % i for i in range(MAX_SELECTORS)]
    user = apply_rules(new_user("u"), groups, CATALOG)
    assert len(user.selectors) == MAX_SELECTORS
    with pytest.raises(AclRuleError, match="at most 128 selectors"):
        apply_rules(user, [b"(~x)"], CATALOG)
    assert apply_rules(user, [b"clearselectors", b"(~x)"], CATALOG).selectors[0].keys == [(b"x", 3)]


def test_a_damaged_description_gives_a_user_that_may_do_nothing() -> None:
    user = parse_description("u", "on nopass ~* +@all (~x -@all +get", CATALOG)
    assert not user.enabled and not user.allowed and not user.keys


def test_split_args_is_redis_s_sdssplitargs() -> None:
    assert split_args(b"\x0b a  b\tc\x0b") == [b"a", b"b", b"c\x0b"]  # as isspace, or not
    assert split_args(b"\"a b\" 'c d' \"\\x41\\n\\\"\" 'it\\'s'") == [
        b"a b",
        b"c d",
        b'A\n"',
        b"it's",
    ]
    assert split_args(b'~a"b') is None  # unbalanced
    assert split_args(b'"a"b') is None  # a closing quote must end the word
    assert split_args(b"a\0b c") == [b"a"]  # a C string ends at NUL
    assert split_args(b"") == []


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
        ("+select|", "Syntax error"),
        ("+config|nosuch", "Unknown command or category name in ACL"),
        ("(~x +nosuch)", "Unknown command or category name in ACL"),
        ("(on)", "Syntax error"),
        ("(>pw)", "Syntax error"),
        (
            "(allkeys ~x)",
            "Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
            "valid and does not have any effect. Try 'resetkeys' to start with an empty list of "
            "patterns",
        ),
        ('("" +get)', "Syntax error"),
        (")", "Syntax error"),
        (
            '("~a)" +get)',
            "Cairn refuses a rule ending with ')' inside a selector (ACL LIST "
            "could not be read back)",
        ),
        (
            '("+select|a b")',
            "Cairn refuses spaces in a first-argument rule (ACL LIST could not be read back)",
        ),
        ('("~\\xff")', "Cairn needs the rules of a selector in UTF-8"),
        ("~a\tb", "Syntax error"),
        ("&a\x0bb", "Syntax error"),
        ("(\x0b~c\x0b +get)", "Syntax error"),
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


def test_a_selector_left_open_is_refused_naming_where_it_starts() -> None:
    for rules in ([b"(~x"], [b"on", b"(~x", b"+get"], [b"(~a", b"+get)", b"(~b"]):
        start = [r for r in rules if r.startswith(b"(")][-1].decode()
        with pytest.raises(AclRuleError) as caught:
            apply_rules(new_user("u"), rules, CATALOG)
        assert str(caught.value) == f"Unmatched parenthesis in acl selector starting at '{start}'."


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


def test_any_selector_may_allow_a_command_but_only_whole() -> None:
    user = _user("on ~root:* +get (~app:* +get +mget) (%W~log:* +set) (&ch* +publish)")
    assert check(user, CATALOG, [b"get", b"root:1"], [b"root:1"], False) is None
    assert check(user, CATALOG, [b"get", b"app:1"], [b"app:1"], False) is None
    assert check(user, CATALOG, [b"set", b"log:1", b"v"], [b"log:1"], True) is None
    assert check(user, CATALOG, [b"publish", b"ch1", b"m"], [], False) is None
    # Each key of one command against one selector: app:1 and root:1 are never together.
    denied = check(user, CATALOG, [b"mget", b"app:1", b"root:1"], [b"app:1", b"root:1"], False)
    assert denied is not None and (denied.reason, denied.object) == ("key", "root:1")
    # The denial Redis reports: a channel over a key over the command ...
    denied = check(user, CATALOG, [b"publish", b"x", b"m"], [], False)
    assert denied is not None and (denied.reason, denied.object) == ("channel", "x")
    denied = check(user, CATALOG, [b"get", b"log:1"], [b"log:1"], False)
    assert denied is not None and (denied.reason, denied.object) == ("key", "log:1")
    denied = check(user, CATALOG, [b"del", b"app:1"], [b"app:1"], True)
    assert denied is not None and (denied.reason, denied.object) == ("command", "del")
    # ... and of keys refused by different selectors, the latest in the command.
    other = _user("on (%R~a* +mget) (~b* +mget)")
    denied = check(other, CATALOG, [b"mget", b"a1", b"b1"], [b"a1", b"b1"], False)
    assert denied is not None and denied.object == "b1"
    denied = check(other, CATALOG, [b"mget", b"b1", b"a1"], [b"b1", b"a1"], False)
    assert denied is not None and denied.object == "a1"


def test_first_argument_rules_allow_only_that_argument() -> None:
    user = _user("on allkeys +select|0 +get|AbC (+echo|hi)")
    assert check(user, CATALOG, [b"select", b"0"], [], False) is None
    assert check(user, CATALOG, [b"select", b"1"], [], False) is not None
    assert check(user, CATALOG, [b"select"], [], False) is not None
    assert check(user, CATALOG, [b"GET", b"aBc"], [b"aBc"], False) is None  # ASCII case
    assert check(user, CATALOG, [b"echo", b"HI"], [], False) is None
    denied = check(user, CATALOG, [b"echo", b"ho"], [], False)
    assert denied is not None and denied.dryrun_text() == (
        "This user has no permissions to run the 'echo' command"
    )
    assert _user("on +get|x -get").firstargs == {}  # a rule on the command forgets them
    assert _user("on +get|x +@all").firstargs == {}


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
