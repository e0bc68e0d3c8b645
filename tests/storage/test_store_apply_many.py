"""`StoreMachine.apply_many` on LMDB and in memory: the same replies and state as one
`apply` per entry, one LMDB commit for the batch, failing commands still atomic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.resp.reply import Reply
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
from cairn.storage.lmdb_keyspace import LmdbKeyspace, LmdbWriteBatch
from cairn.store import MemoryKeyspace, StoreMachine, encode_command
from cairn.store.keyspace import Keyspace

T0 = 1_700_000_000_000

ENTRIES: list[tuple[int, bytes]] = [
    (5, encode_command("set", [b"a", b"1"], T0)),
    (6, encode_command("hset", [b"h", b"f", b"v"], T0 + 5)),
    (7, encode_command("incr", [b"h"], T0 + 6)),  # WRONGTYPE: no trace but the index
    (8, b"\x93garbage"),  # malformed entry
    (9, encode_command("nosuchcommand", [b"x"], T0 + 2)),
    (10, encode_command("set", [b"e", b"v", b"PX", b"10"], T0 + 1)),  # time never goes back
    (11, encode_command("incr", [b"a"], T0 + 20)),
    (12, encode_command("setex", [b"b", b"-1", b"v"], T0 + 21)),  # error
    (13, encode_command("append", [b"a", b"x"], T0 + 22)),
]


@pytest.fixture
def lmdb_env(tmp_path: Path) -> Iterator[LmdbEnv]:
    env = LmdbEnv.open(tmp_path / "data", 1, "test", LmdbOptions(map_size=1 << 26))
    yield env
    env.close()


def _one_by_one(space: Keyspace) -> tuple[list[Reply], StoreMachine]:
    machine = StoreMachine(space)
    return [machine.apply(i, d) for i, d in ENTRIES], machine


def _state(space: Keyspace) -> list[tuple[bytes, bytes]]:
    return space.scan(b"")


@pytest.mark.parametrize("split", [1, 4, len(ENTRIES)])
def test_apply_many_matches_apply_in_memory(split: int) -> None:
    expected, reference = _one_by_one(MemoryKeyspace())
    space = MemoryKeyspace()
    machine = StoreMachine(space)
    replies: list[Reply] = []
    for at in range(0, len(ENTRIES), split):
        replies += machine.apply_many(ENTRIES[at : at + split])
    assert replies == expected
    assert _state(space) == _state(reference.keyspace)
    assert (machine.applied_index, machine.max_now_ms) == (13, T0 + 22)


def test_apply_many_on_lmdb_matches_apply_and_commits_once(
    lmdb_env: LmdbEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, reference = _one_by_one(MemoryKeyspace())
    commits: list[object] = []
    real_commit = lmdb_env.commit
    monkeypatch.setattr(lmdb_env, "commit", lambda wtx: (commits.append(wtx), real_commit(wtx)))
    space = LmdbKeyspace(lmdb_env)
    machine = StoreMachine(space)
    assert machine.apply_many(ENTRIES) == expected
    assert len(commits) == 1, "one LMDB write transaction for the whole batch"
    assert _state(space) == _state(reference.keyspace)
    reopened = StoreMachine(LmdbKeyspace(lmdb_env))
    assert (reopened.applied_index, reopened.max_now_ms) == (13, T0 + 22)
    assert machine.durable and not reference.durable


def test_a_crash_inside_apply_many_keeps_nothing_of_the_batch(
    lmdb_env: LmdbEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = StoreMachine(LmdbKeyspace(lmdb_env))
    machine.apply(1, encode_command("set", [b"k", b"old"], T0))
    before = _state(machine.keyspace)
    real_put = LmdbWriteBatch.put
    calls = 0

    def failing_put(batch: LmdbWriteBatch, key: bytes, value: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("a bug in the middle of the batch")
        real_put(batch, key, value)

    monkeypatch.setattr(LmdbWriteBatch, "put", failing_put)
    with pytest.raises(RuntimeError):
        machine.apply_many(
            [
                (2, encode_command("set", [b"k", b"new"], T0 + 1)),
                (3, encode_command("set", [b"j", b"v"], T0 + 2)),
                (4, encode_command("set", [b"i", b"v"], T0 + 3)),
            ]
        )
    monkeypatch.undo()
    assert _state(machine.keyspace) == before
    assert (machine.applied_index, machine.max_now_ms) == (1, T0)
