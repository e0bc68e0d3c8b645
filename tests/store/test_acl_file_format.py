"""Redis 7.0's ACL file format with selectors and first arguments: the lines a real
redis-server writes with ACL SAVE (`user <name> <rules>`) are the descriptions Cairn
replicates, read back into the same users (Cairn keeps users in the cluster's metadata,
not in a file, so this is the format users move in and out in)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from store_harness import RawRedis

from cairn.runtime.acl_commands import node_catalog
from cairn.runtime.client_commands import CLIENT_COMMANDS
from cairn.shard.pubsub import PUBSUB_COMMANDS
from cairn.store import COMMANDS
from cairn.store.acl import apply_rules, describe, new_user, parse_description

CATALOG = node_catalog({**COMMANDS, **CLIENT_COMMANDS, **PUBSUB_COMMANDS})
USERS = {
    b"sel": [b"on", b">pw", b"~r:*", b"&c1", b"+get", b"(~w:*", b"&c2*", b"+@write", b"-del)"],
    b"all": [b"on", b"nopass", b"(&* ~* +@all -@dangerous)", b"(%R~r:* +@read)"],
    b"arg": [b"off", b"+select|0", b"+select|AbC", b"(+echo|hi ~x)", b"clearselectors"],
    b"mix": [b"+@all", b"-get", b"+get|x", b'("+get|y" "%W~a\\x41")', b"(resetchannels &z)"],
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis_acl_file(tmp_path: Path) -> list[str]:
    """The ACL file a redis-server writes for USERS (ACL SAVE), line by line."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        [*args, "--aclfile", str(aclfile)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = RawRedis(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        for name, rules in USERS.items():
            assert conn.call([b"ACL", b"SETUSER", name, *rules]) == b"+OK\r\n"
        assert conn.call([b"ACL", b"SAVE"]) == b"+OK\r\n"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return aclfile.read_text().splitlines()


def test_redis_acl_file_lines_are_cairn_s_descriptions(tmp_path: Path) -> None:
    lines = {}
    for line in _redis_acl_file(tmp_path):
        _, name, rules = line.split(" ", 2)
        lines[name] = rules
    assert set(lines) == {"default", *(n.decode() for n in USERS)}
    assert "(~* &* +@all -@dangerous)" in lines["all"]  # selectors are written as (...)
    for name, rules in USERS.items():
        ours = describe(apply_rules(new_user(name.decode()), rules, CATALOG), CATALOG)
        assert ours == lines[name.decode()]
        again = parse_description(name.decode(), lines[name.decode()], CATALOG)
        assert describe(again, CATALOG) == ours
