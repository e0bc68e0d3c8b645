"""ACL users on a live 3-node cluster: created on one node, enforced on every node (also
through forwarding), compared byte for byte with a real redis-server where Redis's
replies are deterministic, and deleted everywhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from cluster_fixture import running_cluster
from store_harness import RawRedis

from cairn.runtime.local_cluster import HOST, LocalCluster

NOPERM_KEY = b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
NOPERM_CHANNEL = (
    b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
)
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
WAIT = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("acl")) as c:
        yield c


def _port(cluster: LocalCluster, node: int) -> int:
    return cluster.spec(node).client_port


def _raw(cluster: LocalCluster, node: int) -> RawRedis:
    return RawRedis(_port(cluster, node))


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.05)


def _auth_ok(cluster: LocalCluster, node: int, user: bytes, password: bytes) -> bool:
    conn = _raw(cluster, node)
    try:
        return conn.call([b"AUTH", user, password]) == b"+OK\r\n"
    finally:
        conn.close()


def test_a_user_made_on_one_node_is_confined_on_every_node(cluster: LocalCluster) -> None:
    admin = _raw(cluster, 1)
    assert admin.call([b"ACL", b"SETUSER", b"app", b"on", b">pw", b"~app:*", b"+@all"]) == (
        b"+OK\r\n"
    )
    assert _auth_ok(cluster, 1, b"app", b"pw")  # at once on the node that made it
    for node in (1, 2, 3):
        _until(lambda n=node: _auth_ok(cluster, n, b"app", b"pw"), f"app authenticates on {node}")
        conn = _raw(cluster, node)
        assert conn.call([b"AUTH", b"app", b"wrong"]) == WRONGPASS
        assert conn.call([b"AUTH", b"app", b"pw"]) == b"+OK\r\n"
        key = b"app:%d" % node
        assert conn.call([b"SET", key, b"ok"]) == b"+OK\r\n"
        assert conn.call([b"SET", b"other:1", b"x"]) == NOPERM_KEY
        # Every node reads every key: two of three are followers of its region and
        # forward the GET, with the user, to the leader, which checks it again.
        for other in (1, 2, 3):
            assert conn.call([b"GET", b"app:%d" % other]) in (b"$2\r\nok\r\n", b"$-1\r\n")
        assert conn.call([b"GET", key]) == b"$2\r\nok\r\n"
        assert conn.call([b"GET", b"other:1"]) == NOPERM_KEY
        assert conn.call([b"ACL", b"WHOAMI"]) == b"$3\r\napp\r\n"
        listing = conn.call([b"CLIENT", b"LIST"])
        assert b" user=app " in listing
        conn.close()
    conn = _raw(cluster, 2)
    assert conn.call([b"HELLO", b"3", b"AUTH", b"app", b"bad"]) == WRONGPASS
    assert conn.call([b"HELLO", b"2", b"AUTH", b"app", b"pw"]).startswith(b"*14\r\n")
    assert conn.call([b"ACL", b"WHOAMI"]) == b"$3\r\napp\r\n"
    conn.close()
    conn = _raw(cluster, 1)
    assert conn.call([b"AUTH", b"app", b"pw"]) == b"+OK\r\n"
    assert conn.call([b"MULTI"]) == b"+OK\r\n"
    assert conn.call([b"SET", b"app:m", b"1"]) == b"+QUEUED\r\n"
    assert conn.call([b"SET", b"other:m", b"1"]) == NOPERM_KEY
    assert conn.call([b"EXEC"]) == (
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )
    assert conn.call([b"GET", b"app:m"]) == b"$-1\r\n"
    conn.close()
    admin.close()


def test_commands_channels_and_the_log(cluster: LocalCluster) -> None:
    admin = _raw(cluster, 2)
    rules = [b"on", b">pw", b"~*", b"-@all", b"+get", b"+publish", b"+auth", b"&news"]
    assert admin.call([b"ACL", b"SETUSER", b"ro", *rules]) == b"+OK\r\n"
    assert admin.call([b"ACL", b"SETUSER", b"bin", b"~\xff"]) == (
        b"-ERR Cairn needs user names and ACL rules (but passwords) in UTF-8\r\n"
    )
    assert admin.call([b"ACL", b"SETUSER", b"bin", b">\xff"]) == b"+OK\r\n"
    _until(lambda: _auth_ok(cluster, 3, b"ro", b"pw"), "ro authenticates on node 3")
    conn = _raw(cluster, 3)
    assert conn.call([b"AUTH", b"ro", b"pw"]) == b"+OK\r\n"
    assert conn.call([b"SET", b"k", b"v"]) == (
        b"-NOPERM this user has no permissions to run the 'set' command\r\n"
    )
    assert conn.call([b"GET", b"k"]) == b"$-1\r\n"
    assert conn.call([b"PUBLISH", b"news", b"m"]) == b":0\r\n"
    assert conn.call([b"PUBLISH", b"sport", b"m"]) == NOPERM_CHANNEL
    assert conn.call([b"CLIENT", b"LIST"]) == (
        b"-NOPERM this user has no permissions to run the 'client|list' command\r\n"
    )
    conn.close()
    log = redis.Redis(host=HOST, port=_port(cluster, 3), decode_responses=True).acl_log()
    seen = {(e["reason"], e["context"], e["object"], e["username"], e["count"]) for e in log}
    assert ("channel", "toplevel", "sport", "ro", 1) in seen
    assert ("command", "toplevel", "client|list", "ro", 1) in seen
    assert ("command", "toplevel", "set", "ro", 1) in seen
    mine = [e for e in log if e["username"] == "ro" and e["reason"] != "auth"]
    assert mine and all(e["client-info"]["user"] == "ro" for e in mine)  # parsed by redis-py
    assert all(0 <= e["age-seconds"] < 60 for e in mine), mine


def test_acl_commands_match_redis(cluster: LocalCluster, redis_server_port: int) -> None:
    script: list[list[bytes]] = [
        [b"ACL", b"SETUSER", b"cmp", b"on", b">secret", b"%R~r:*", b"%W~w:*", b"~b"],
        [b"ACL", b"SETUSER", b"cmp", b"&chan*", b"-@all", b"+@read", b"+@write"],
        [b"ACL", b"GETUSER", b"cmp"],
        [b"ACL", b"SETUSER", b"cmp", b"+@all", b"-@dangerous", b"-client|kill"],
        [b"ACL", b"GETUSER", b"cmp"],
        [b"ACL", b"SETUSER", b"cmp", b"reset"],
        [b"ACL", b"GETUSER", b"cmp"],
        [b"ACL", b"SETUSER", b"cmp", b"+foo"],
        [b"ACL", b"SETUSER", b"cmp", b"+@foo"],
        [b"ACL", b"SETUSER", b"cmp", b"badrule"],
        [b"ACL", b"SETUSER", b"cmp", b"#abc"],
        [b"ACL", b"SETUSER", b"cmp", b"<nope"],
        [b"ACL", b"SETUSER", b"cmp", b"%X~a"],
        [b"ACL", b"SETUSER", b"cmp", b"~a b"],
        [b"ACL", b"SETUSER", b"cmp", b"allkeys", b"~x"],
        [b"ACL", b"SETUSER", b"cmp", b"allchannels", b"&x"],
        [b"ACL", b"SETUSER", b"cmp", b"+client|list|x"],
        [b"ACL", b"SETUSER", b"a b"],
        [b"ACL", b"SETUSER", b"cmp", b"on", b"nopass", b"~k*", b"+get", b"+set"],
        [b"ACL", b"DRYRUN", b"cmp", b"get", b"k1"],
        [b"ACL", b"DRYRUN", b"cmp", b"get", b"x"],
        [b"ACL", b"DRYRUN", b"cmp", b"del", b"k1"],
        [b"ACL", b"DRYRUN", b"nobody", b"get", b"x"],
        [b"ACL", b"DRYRUN", b"cmp", b"nosuchcommand"],
        [b"ACL", b"GETUSER", b"nobody"],
        [b"ACL", b"DELUSER", b"default"],
        [b"ACL", b"DELUSER", b"cmp", b"nobody"],
        [b"ACL", b"DELUSER", b"cmp"],
        [b"ACL", b"WHOAMI"],
        [b"ACL", b"CAT"],
        [b"ACL", b"CAT", b"nosuch"],
        [b"ACL", b"GENPASS", b"0"],
        [b"ACL", b"LOG", b"x"],
        [b"ACL", b"LOG", b"1", b"2"],
        [b"ACL", b"NOSUCH"],
        [b"ACL", b"GETUSER"],
        [b"AUTH", b"nobody", b"pw"],
    ]
    theirs, ours = RawRedis(redis_server_port), _raw(cluster, 3)
    mismatches = []
    for argv in script:
        want, got = theirs.call(argv), ours.call(argv)
        if want != got:
            mismatches.append(f"{argv!r}: redis {want!r} cairn {got!r}")
    assert not mismatches, "\n".join(mismatches)
    for bits, length in ((None, 64), (b"5", 2), (b"130", 33)):
        args = [b"ACL", b"GENPASS"] + ([bits] if bits else [])
        value = ours.call(args).split(b"\r\n")[1]
        assert len(value) == length and value != ours.call(args).split(b"\r\n")[1]
    ours.close()
    theirs.close()


def test_getuser_in_resp3_matches_redis(cluster: LocalCluster, redis_server_port: int) -> None:
    rules = ["on", ">pw", "~a:*", "&c", "-@all", "+@hash", "+@list", "-lpush"]
    replies = []
    for port in (redis_server_port, _port(cluster, 1)):
        r = redis.Redis(host=HOST, port=port, protocol=3)
        r.execute_command("ACL", "SETUSER", "three", *rules)
        replies.append(r.execute_command("ACL", "GETUSER", "three"))
        r.execute_command("ACL", "DELUSER", "three")
        r.close()
    assert replies[0] == replies[1]


def test_deleted_user_fails_everywhere_and_is_disconnected(cluster: LocalCluster) -> None:
    admin = _raw(cluster, 1)
    assert admin.call([b"ACL", b"SETUSER", b"gone", b"on", b">pw", b"~*", b"+@all"]) == (b"+OK\r\n")
    _until(lambda: _auth_ok(cluster, 2, b"gone", b"pw"), "gone authenticates on node 2")
    held = _raw(cluster, 2)
    assert held.call([b"AUTH", b"gone", b"pw"]) == b"+OK\r\n"
    killed = _raw(cluster, 2)
    assert killed.call([b"AUTH", b"gone", b"pw"]) == b"+OK\r\n"
    killer = _raw(cluster, 2)
    assert (
        killer.call([b"CLIENT", b"KILL", b"USER", b"nobody"]) == b"-ERR No such user 'nobody'\r\n"
    )
    assert (
        killer.call(
            [
                b"CLIENT",
                b"KILL",
                b"USER",
                b"gone",
                b"ID",
                b"%d" % int(killed.call([b"CLIENT", b"ID"])[1:-2]),
            ]
        )
        == b":1\r\n"
    )
    with pytest.raises(ConnectionError):
        killed.call([b"PING"])  # CLIENT KILL USER closed it, and only it
    assert held.call([b"PING"]) == b"+PONG\r\n"
    killer.close()
    killed.close()
    assert admin.call([b"ACL", b"DELUSER", b"gone"]) == b":1\r\n"
    for node in (1, 2, 3):
        _until(lambda n=node: not _auth_ok(cluster, n, b"gone", b"pw"), f"gone refused on {node}")
    with pytest.raises(ConnectionError):
        held.call([b"PING"])  # Redis 7.0 closes a deleted user's connections
    held.close()
    admin.close()


def test_idempotent_writes_are_checked_as_the_command_they_wrap(cluster: LocalCluster) -> None:
    admin = _raw(cluster, 1)
    assert admin.call([b"ACL", b"SETUSER", b"idem", b"on", b">pw", b"~app:*", b"+@all"]) == (
        b"+OK\r\n"
    )
    for node in (1, 2, 3):  # on the leader and through forwarding
        _until(lambda n=node: _auth_ok(cluster, n, b"idem", b"pw"), f"idem on node {node}")
        conn = _raw(cluster, node)
        assert conn.call([b"AUTH", b"idem", b"pw"]) == b"+OK\r\n"
        rid = b"acl-%d" % node
        ok = conn.call([b"IDEMPOTENT", rid, b"INCR", b"app:idem:%d" % node])
        assert ok == b":1\r\n"
        assert conn.call([b"IDEMPOTENT", rid, b"INCR", b"app:idem:%d" % node]) == ok
        assert conn.call([b"IDEMPOTENT", rid + b"x", b"INCR", b"other:idem"]) == NOPERM_KEY
        conn.close()
    assert admin.call([b"ACL", b"DELUSER", b"idem"]) == b":1\r\n"
    admin.close()


def test_a_confined_user_runs_scripts_checked_per_call(cluster: LocalCluster) -> None:
    """A script carries its caller's ACL rules: each redis.call is checked against them
    on every replica, so a user confined to app:* cannot reach other keys through one."""
    admin = _raw(cluster, 1)
    assert admin.call([b"ACL", b"SETUSER", b"lua", b"on", b">pw", b"~app:*", b"+@all"]) == (
        b"+OK\r\n"
    )
    _until(lambda: _auth_ok(cluster, 2, b"lua", b"pw"), "lua authenticates on node 2")
    conn = _raw(cluster, 2)
    assert conn.call([b"AUTH", b"lua", b"pw"]) == b"+OK\r\n"
    script = b"return redis.call('SET', 'other:lua', 'x')"
    refused = conn.call([b"EVAL", script, b"0"])
    assert refused.startswith(b"-ERR The user executing the script can't access"), refused
    assert conn.call([b"EVALSHA", b"0" * 40, b"0"]).startswith(b"-NOSCRIPT"), "EVALSHA too"
    assert admin.call([b"GET", b"other:lua"]) == b"$-1\r\n"
    assert admin.call([b"EVAL", b"return 1", b"0"]) == b":1\r\n"  # the default user may
    conn.close()
    assert admin.call([b"ACL", b"DELUSER", b"lua"]) == b":1\r\n"
    admin.close()


SELECTOR_RULES = [b"reset", b"on", b">pw", b"~root:*", b"+get", b"(~app:*", b"+@string)"]
SELECTOR_RULES += [b"(%W~log:* +set)", b"(&ch* +publish)", b"(%R~a* +mget)", b"(~b* +mget)"]
FIRSTARG_RULES = [b"reset", b"on", b">pw", b"~*", b"+select|0", b"+select|AbC", b"+select|0"]
SELECTOR_SCRIPT: list[list[bytes]] = [
    [b"ACL", b"SETUSER", b"sel", *SELECTOR_RULES],
    [b"ACL", b"GETUSER", b"sel"],
    [b"ACL", b"SETUSER", b"fa", *FIRSTARG_RULES],
    [b"ACL", b"GETUSER", b"fa"],
    *(
        [b"ACL", b"DRYRUN", b"sel", *argv]
        for argv in (
            [b"get", b"app:1"],
            [b"get", b"log:1"],
            [b"get", b"root:1"],
            [b"set", b"log:1", b"v"],
            [b"set", b"app:1", b"v"],
            [b"mget", b"app:1", b"log:1"],
            [b"mget", b"a1", b"b1"],
            [b"mget", b"b1", b"a1"],
            [b"mget", b"c1", b"a1", b"b2"],
            [b"publish", b"ch1", b"m"],
            [b"publish", b"x", b"m"],
            [b"mset", b"app:1", b"a", b"log:1", b"b"],
        )
    ),
    *(
        [b"ACL", b"DRYRUN", b"fa", *argv]
        for argv in ([b"select", b"0"], [b"select", b"abc"], [b"select", b"1"], [b"get", b"K"])
    ),
    [b"ACL", b"DRYRUN", b"fa", b"get", b"x"],
    [b"ACL", b"DRYRUN", b"fa", b"select"],
    [b"ACL", b"DRYRUN", b"fa", b"config", b"get"],
    [b"ACL", b"DRYRUN", b"fa", b"client", b"kill"],
    [b"ACL", b"DRYRUN", b"fa", b"client", b"list", b"x"],
    [b"ACL", b"SETUSER", b"fa", b"+select|a\tb", b"+select|c\0d"],
    [b"ACL", b"GETUSER", b"fa"],
    [b"ACL", b"SETUSER", b"fa", b"-select"],
    [b"ACL", b"GETUSER", b"fa"],
    [b"ACL", b"SETUSER", b"fa", b"+get|k"],
    [b"ACL", b"GETUSER", b"fa"],
    [b"ACL", b"DRYRUN", b"fa", b"get", b"K"],
    [b"ACL", b"SETUSER", b"fa", b"-@string"],
    [b"ACL", b"GETUSER", b"fa"],
    [b"ACL", b"SETUSER", b"fa", b"+@all", b"-get", b"+get|x", b"+get|X", b"(+get|y)"],
    [b"ACL", b"GETUSER", b"fa"],
    *(
        [b"ACL", b"SETUSER", b"bad", *rules]
        for rules in (
            [b"(~x"],
            [b"on", b"(~x", b"+get"],
            [b"(~x +nosuch)"],
            [b"(on)"],
            [b")"],
            [b"(", b"x)"],
            [b'("" +get)'],
            [b"(allkeys ~x)"],
            [b"+config|get|x"],
            [b"+config|nosuch"],
            [b"+select|"],
            [b"-select|0"],
            [b"+nosuch|x"],
            [b"~a\tb"],
            [b"&a\x0bb"],
            [b"~a\0b"],
            [b"-get\0x", b"+nosuch"],
        )
    ),
    [b"ACL", b"GETUSER", b"bad"],
    [b"ACL", b"SETUSER", b"a\tb"],
    [b"ACL", b"SETUSER", b"odd", b"(a", b"(~b", b"+get)", b'(~c"d +get)', b"( ~e  +del )"],
    [b"ACL", b"GETUSER", b"odd"],
    [b"ACL", b"SETUSER", b"odd", b"clearselectors"],
    [b"ACL", b"GETUSER", b"odd"],
    [b"ACL", b"SETUSER", b"odd", b'("~x\\x41" "+get")', b"(~a ~a %R~a ~*)", b"reset"],
    [b"ACL", b"GETUSER", b"odd"],
]
SELECTOR_USERS = (b"sel", b"fa", b"odd", b"bad")
USER_COMMANDS: list[list[bytes]] = [
    [b"GET", b"app:1"],
    [b"GET", b"log:1"],
    [b"SET", b"log:1", b"v"],
    [b"SET", b"app:1", b"v"],
    [b"GET", b"app:1"],
    [b"MGET", b"app:1", b"log:1"],
    [b"MGET", b"b1", b"a1"],
    [b"PUBLISH", b"ch1", b"m"],
    [b"PUBLISH", b"x", b"m"],
    [b"SELECT", b"0"],
    [b"DEL", b"log:1"],
]


def _users_lines(port: int) -> list[bytes]:
    r = redis.Redis(host=HOST, port=port)
    try:
        lines = r.execute_command("ACL", "LIST")
    finally:
        r.close()
    return [line for line in lines if line.split(b" ")[1] in SELECTOR_USERS]


def test_selectors_and_first_args_match_redis(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    theirs, ours = RawRedis(redis_server_port), _raw(cluster, 3)
    mismatches = []
    for argv in [[b"ACL", b"DELUSER", *SELECTOR_USERS], *SELECTOR_SCRIPT]:
        want, got = theirs.call(argv), ours.call(argv)
        if want != got:
            mismatches.append(f"{argv!r}: redis {want!r} cairn {got!r}")
    assert not mismatches, "\n".join(mismatches)
    assert _users_lines(redis_server_port) == _users_lines(_port(cluster, 3))
    replies = []
    for port in (redis_server_port, _port(cluster, 3)):  # RESP3: selectors are maps
        r = redis.Redis(host=HOST, port=port, protocol=3)
        replies.append(r.execute_command("ACL", "GETUSER", "sel"))
        r.close()
    assert replies[0] == replies[1]
    assert replies[1][b"selectors"][1] == {  # the selector (%W~log:* +set)
        b"commands": b"-@all +set",
        b"keys": b"%W~log:*",
        b"channels": b"",
    }
    ours.close()
    theirs.close()


def test_selector_denials_on_every_node_match_redis(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    admin, theirs_admin = _raw(cluster, 1), RawRedis(redis_server_port)
    for conn in (admin, theirs_admin):
        assert conn.call([b"ACL", b"SETUSER", b"sel", *SELECTOR_RULES, b"+select|0"]) == (
            b"+OK\r\n"
        )
        assert conn.call([b"DEL", b"app:1", b"log:1"])[:1] == b":"
    theirs = RawRedis(redis_server_port)
    theirs.call([b"ACL", b"LOG", b"RESET"])
    assert theirs.call([b"AUTH", b"sel", b"pw"]) == b"+OK\r\n"
    want = [theirs.call(argv) for argv in USER_COMMANDS]
    assert want[1] == NOPERM_KEY and want[8] == NOPERM_CHANNEL  # the script means it
    for node in (1, 2, 3):  # through forwarding too: the leader checks again
        _until(lambda n=node: _auth_ok(cluster, n, b"sel", b"pw"), f"sel on node {node}")
        assert admin.call([b"DEL", b"app:1", b"log:1"])[:1] == b":"
        ours = _raw(cluster, node)
        ours.call([b"ACL", b"LOG", b"RESET"])
        assert ours.call([b"AUTH", b"sel", b"pw"]) == b"+OK\r\n"
        got = [ours.call(argv) for argv in USER_COMMANDS]
        assert got == want, f"node {node}: {got!r} != {want!r}"
        ours.close()
    logs = []
    for port in (redis_server_port, _port(cluster, 3)):
        r = redis.Redis(host=HOST, port=port)
        logs.append([(e["reason"], e["object"], e["username"], e["count"]) for e in r.acl_log()])
        r.close()
    assert logs[0] == logs[1] and logs[0], logs
    theirs.close()
    for conn in (admin, theirs_admin):
        assert conn.call([b"ACL", b"DELUSER", b"sel"]) == b":1\r\n"
        conn.close()


def test_users_too_long_to_replicate_are_refused(cluster: LocalCluster) -> None:
    """ACL_USERS frames carry names of at most 1,024 characters and rules of at most
    1 MiB: a longer user would make every node refuse the table that holds it."""
    admin = _raw(cluster, 2)
    refused = (
        b"-ERR Cairn replicates users of at most 1024 characters of name and 1048576 of "
        b"rules (as ACL LIST shows them)\r\n"
    )
    assert admin.call([b"ACL", b"SETUSER", b"n" * 1025]) == refused
    assert admin.call([b"ACL", b"SETUSER", b"long", b"~" + b"k" * (1 << 20)]) == refused
    many = [b"(~k%d +get)" % i for i in range(129)]  # each costs every command a check
    assert admin.call([b"ACL", b"SETUSER", b"long", *many]) == (
        b"-ERR Error in ACL SETUSER modifier '(~k128 +get)': Cairn allows at most 128 "
        b"selectors per user\r\n"
    )
    assert admin.call([b"ACL", b"GETUSER", b"long"]) == b"$-1\r\n"
    assert admin.call([b"ACL", b"SETUSER", b"n" * 1024, b"(~k +get)"]) == b"+OK\r\n"
    assert admin.call([b"ACL", b"DELUSER", b"n" * 1024]) == b":1\r\n"
    admin.close()
