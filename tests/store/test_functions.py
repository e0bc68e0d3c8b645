"""FUNCTION libraries and ACL inside scripts, below the node: the library table's
changes, its replication state in the placement metadata (a change applies only on the
version it started from; snapshots keep the libraries), hostile FUNCTION RESTORE payloads,
the FUNCTIONS frame check, and each redis.call checked against the caller's rules
(compared byte for byte with a real redis-server). FUNCTION's replies themselves are in
`scripts/functions.txt`."""

from __future__ import annotations

import time

import pytest
from store_harness import FakeClock, MachineClient, RawRedis, resp2

from cairn.placement.commands import Ack, SetFunctions
from cairn.placement.metadata import ClusterMetadata
from cairn.resp.reply import Bulk, ErrorReply, Integer, Reply
from cairn.runtime.frame_checks import check_functions
from cairn.runtime.frames import FrameError, FrameKind
from cairn.store import classify, encode_command
from cairn.store.acl import apply_rules, describe, new_user
from cairn.store.rdb import with_footer
from cairn.store.scripting.acl import script_catalog
from cairn.store.scripting.front import Deferred, FunctionFront
from cairn.store.scripting.functions import Change, Libraries, load_library

LIB = b"#!lua name=lib\nredis.register_function('f', function(k, a) return a[1] end)"
OTHER = b"#!lua name=other\nredis.register_function('g', function() return 2 end)"


def test_a_change_is_the_whole_new_table_at_a_base_version() -> None:
    libs = Libraries()
    change = libs.load([LIB])
    assert isinstance(change, Change) and change.base == 0
    assert change.items == (("lib", LIB),) and change.reply == Bulk(b"lib")
    assert not libs.libraries  # nothing applies until the change is adopted
    libs.adopt(1, change.items)
    assert libs.function(b"F") is not None and libs.version == 1
    libs.adopt(1, ())  # not newer: ignored
    assert "lib" in libs.libraries
    second = libs.load([OTHER])
    assert isinstance(second, Change) and second.base == 1
    assert [n for n, _ in second.items] == ["lib", "other"]


def test_the_placement_metadata_applies_a_change_only_on_its_base_and_keeps_it() -> None:
    meta = ClusterMetadata()
    assert meta.apply(SetFunctions(0, (("lib", LIB),), 5)) == Ack(True)
    stale = meta.apply(SetFunctions(0, (("other", OTHER),), 6))  # another node's base
    assert isinstance(stale, Ack) and not stale.ok
    assert meta.functions == (("lib", LIB),) and meta.function_version == 1
    restored = ClusterMetadata()
    restored.restore(meta.snapshot())  # a restart or a snapshot keeps the libraries
    assert restored.functions == (("lib", LIB),) and restored.function_version == 1


def test_a_front_with_a_proposer_answers_when_the_change_applied() -> None:
    front = FunctionFront()
    proposed: list[Change] = []
    answers: list[object] = []

    def propose(change: Change, applied: object) -> bool:
        proposed.append(change)
        applied(False)  # type: ignore[operator]
        return True

    front.propose = propose
    deferred = front.function([b"LOAD", LIB])
    assert isinstance(deferred, Deferred)
    deferred.start(answers.append)
    assert proposed[0].items == (("lib", LIB),)
    assert isinstance(answers[0], ErrorReply) and "retry" in answers[0].message
    assert not front.libraries.libraries


@pytest.mark.parametrize(
    "payload",
    [
        b"\xf5\x80\xff\xff\xff\xff",  # a length past the payload
        b"\xf5\xc3\x05\xff\xff\xff\xff\x7fabc",  # LZF claiming a huge output
        b"\x00\x03abc",  # not a function
        b"\xf5\x03abc",  # not a library
    ],
)
def test_hostile_restore_payloads_are_refused(payload: bytes) -> None:
    libs = Libraries()
    reply = libs.restore([with_footer(payload)])
    assert isinstance(reply, ErrorReply)
    assert not libs.libraries


def test_a_library_that_never_ends_loading_is_stopped_by_the_budget() -> None:
    started = time.monotonic()
    reply = load_library(b"#!lua name=x\nlocal i = 0 while true do i = i + 1 end")
    assert isinstance(reply, ErrorReply) and "budget" in reply.message
    assert time.monotonic() - started < 5


def test_the_functions_frame_is_checked() -> None:
    frame = [FrameKind.FUNCTIONS, 3, [["lib", LIB]]]
    assert check_functions(frame) == (3, [("lib", LIB)])
    for bad in ([FrameKind.FUNCTIONS, -1, []], [FrameKind.FUNCTIONS, 1, [["lib", "text"]]]):
        with pytest.raises(FrameError):
            check_functions(bad)


def run_fronted(client: MachineClient, args: list[bytes]) -> Reply:
    """Run arguments the front already made (as the node routes them: not fronted again)."""
    spec = classify(args)
    assert not isinstance(spec, ErrorReply)
    now = client.machine.effective_now(client.clock())
    if not spec.is_write:
        return client.machine.execute_read(spec.name, args[1:], now)
    client.index += 1
    return client.machine.apply(client.index, encode_command(spec.name, args[1:], now))


def rules_of(*rules: bytes) -> bytes:
    """The canonical rules a node puts in a script's tail for a user made of `rules`."""
    user = apply_rules(new_user("u"), list(rules), script_catalog())
    return describe(user, script_catalog()).encode()


CONFINED = (b"on", b"nopass", b"+@all", b"-get", b"-object", b"~a*", b"resetchannels")
CASES = [
    [b"EVAL", b"return redis.call('get','a')", b"0"],
    [b"EVAL", b"return redis.pcall('get','a')", b"0"],
    [b"EVAL", b"return redis.call('set','b','1')", b"0"],
    [b"EVAL", b"return redis.call('set','a','1')", b"0"],
    [b"EVAL", b"return redis.call('object','help')", b"0"],
    [b"EVAL", b"return redis.call('ping')", b"0"],
    [b"FCALL", b"getter", b"1", b"a"],
    [b"FCALL", b"setter", b"1", b"a"],
]
GETTERS = (
    b"#!lua name=acltest\n"
    b"redis.register_function('getter', function(k) return redis.call('get', k[1]) end)\n"
    b"redis.register_function('setter', function(k) return redis.call('set', 'zz', 1) end)"
)


def test_each_redis_call_is_checked_against_the_callers_rules_as_redis(
    redis_server_port: int,
) -> None:
    redis = RawRedis(redis_server_port)
    cairn = MachineClient(clock=FakeClock())
    rules = rules_of(*CONFINED)
    for client in (redis.call, lambda argv: resp2(cairn.call(*argv))):
        assert client([b"FUNCTION", b"LOAD", b"REPLACE", GETTERS]) == b"$7\r\nacltest\r\n"
    assert redis.call([b"ACL", b"SETUSER", b"u", *CONFINED]) == b"+OK\r\n"
    assert redis.call([b"AUTH", b"u", b"x"]) == b"+OK\r\n"
    try:
        for argv in CASES:
            fronted = cairn.scripts.front(list(argv), rules)
            assert isinstance(fronted, list)
            ours = resp2(run_fronted(cairn, fronted))
            assert redis.call(argv) == ours, argv
    finally:
        redis.call([b"AUTH", b"default", b"x"])
        redis.call([b"ACL", b"DELUSER", b"u"])
        redis.call([b"FUNCTION", b"FLUSH"])
        redis.close()


def test_without_rules_a_script_may_run_anything() -> None:
    cairn = MachineClient(clock=FakeClock())
    cairn.call("SET", "zz", "1")
    assert cairn.call("EVAL", "return redis.call('exists','zz')", "0") == Integer(1)
    script = [b"EVAL", b"return redis.call('del','zz')", b"0"]
    confined = cairn.scripts.front(script, rules_of(*CONFINED))
    assert isinstance(confined, list)
    assert isinstance(run_fronted(cairn, confined), ErrorReply)
    assert cairn.call("EVAL", "return redis.call('exists','zz')", "0") == Integer(1)
