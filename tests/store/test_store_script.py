"""The command scripts (tests/store/scripts/): they parse, replay on Cairn without a crash,
and (with a redis-server on PATH) matches a real Redis reply for reply."""

from __future__ import annotations

import time

import pytest
from store_harness import FakeClock, MachineClient, RawRedis, normalize, resp2
from store_script import load_script, split_args

from cairn.store import COMMANDS


def test_split_args_like_redis_cli() -> None:
    assert split_args('SET "a b" \'c d\' "\\x41\\n" plain') == [
        b"SET",
        b"a b",
        b"c d",
        b"A\n",
        b"plain",
    ]
    with pytest.raises(ValueError):
        split_args('SET "open')


def test_script_covers_every_command() -> None:
    used = {line.argv[0].lower().decode() for line in load_script()}
    assert set(COMMANDS) <= used


def test_script_replays_on_cairn() -> None:
    client = MachineClient(clock=FakeClock())
    for line in load_script():
        client.call(*line.argv)


def test_script_matches_real_redis(redis_server_port: int) -> None:
    redis = RawRedis(redis_server_port)
    cairn = MachineClient(clock=lambda: int(time.time() * 1000))
    mismatches = []
    for line in load_script():
        theirs = redis.call(line.argv)
        ours = resp2(cairn.call(*line.argv))
        if normalize(theirs, line.tags, line.argv) != normalize(ours, line.tags, line.argv):
            mismatches.append(f"{line.where}: {line.argv!r}: {theirs!r} != {ours!r}")
    redis.close()
    assert not mismatches, "\n".join(mismatches)
