"""CLIENT PAUSE's holding logic (`cairn.runtime.client_pause`) on a fake clock, its
replies (recorded from redis-server 7.0.15), and SAVE / BGSAVE's."""

from __future__ import annotations

from typing import Any, cast

import pytest

from cairn.resp.reply import OK, ErrorReply, Reply, SimpleString
from cairn.runtime import client_pause
from cairn.runtime.client_pause import (
    TOO_MANY_HELD,
    ClientPause,
    PauseMode,
    client_pause_command,
    pause_arity_error,
)
from cairn.runtime.save_commands import bgsave, save


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Conn:
    """What `ClientPause` reads of a connection: whether it closed."""

    def __init__(self) -> None:
        self.state = type("State", (), {"closing": False})()


def _pause() -> tuple[ClientPause, _Clock, list[tuple[Any, list[bytes]]]]:
    clock = _Clock()
    pause = ClientPause(clock=clock)
    ran: list[tuple[Any, list[bytes]]] = []
    pause.attach(lambda conn, args, done: ran.append((conn, args)))
    return pause, clock, ran


def _holds(pause: ClientPause, conn: object, *args: bytes) -> bool:
    answers: list[Reply] = []
    held = pause.holds(cast(Any, conn), args[0].decode().lower(), list(args), answers.append)
    assert not answers
    return held


def test_write_mode_holds_writes_and_then_the_clients_later_reads() -> None:
    pause, _, ran = _pause()
    a, b = _Conn(), _Conn()
    pause.pause(1000, PauseMode.WRITE)
    assert not _holds(pause, a, b"GET", b"k")
    assert _holds(pause, a, b"SET", b"k", b"v")
    assert _holds(pause, a, b"GET", b"k")  # behind a's held write: order kept
    assert not _holds(pause, b, b"GET", b"k")
    assert _holds(pause, b, b"EXEC")  # may replicate
    assert _holds(pause, b, b"PUBLISH", b"c", b"m")
    assert pause.held == 4 and ran == []
    c = _Conn()
    assert _holds(pause, c, b"DEL", b"k")
    c.state.closing = True  # closed while held: dropped
    pause.unpause()
    assert [args[0] for _, args in ran] == [b"SET", b"GET", b"EXEC", b"PUBLISH"]
    assert not _holds(pause, a, b"SET", b"k", b"v")


def test_all_mode_holds_everything_and_the_stricter_longer_pause_wins() -> None:
    pause, clock, ran = _pause()
    pause.pause(1000, PauseMode.ALL)
    pause.pause(10, PauseMode.WRITE)
    assert pause.mode is PauseMode.ALL
    assert _holds(pause, _Conn(), b"CLIENT", b"UNPAUSE")
    clock.now += 0.5
    assert _holds(pause, _Conn(), b"PING")
    clock.now += 0.6  # past the end: the next command ends the pause and runs the held
    assert not _holds(pause, _Conn(), b"SET", b"k", b"v")
    assert len(ran) == 2 and not pause.active


def test_held_commands_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_pause, "MAX_HELD", 50)
    pause, _, _ = _pause()
    pause.pause(1000, PauseMode.WRITE)
    conn = _Conn()
    for _ in range(50):
        pause.holds(cast(Any, conn), "set", [b"SET", b"k", b"v"], lambda r: None)
    answers: list[Reply] = []
    assert pause.holds(cast(Any, conn), "set", [b"SET", b"k", b"v"], answers.append)
    assert answers == [TOO_MANY_HELD]


def test_replies_as_redis() -> None:
    pause, _, _ = _pause()
    cases: list[tuple[list[bytes], Reply]] = [
        ([b"10", b"foo"], ErrorReply("ERR CLIENT PAUSE mode must be WRITE or ALL")),
        ([b"abc", b"foo"], ErrorReply("ERR CLIENT PAUSE mode must be WRITE or ALL")),
        ([b"abc"], ErrorReply("ERR timeout is not an integer or out of range")),
        ([b"1.5"], ErrorReply("ERR timeout is not an integer or out of range")),
        ([b"99999999999999999999"], ErrorReply("ERR timeout is not an integer or out of range")),
        ([b"-1"], ErrorReply("ERR timeout is negative")),
        ([b"0"], OK),
        ([b"100", b"write"], OK),
    ]
    for rest, expected in cases:
        assert client_pause_command(pause, b"pause", rest) == expected, rest
    assert pause_arity_error(b"pause", 2) == ErrorReply(
        "ERR wrong number of arguments for 'client|pause' command"
    )
    assert pause_arity_error(b"pause", 5) == ErrorReply(
        "ERR unknown subcommand or wrong number of arguments for 'pause'. Try CLIENT HELP."
    )
    assert pause_arity_error(b"unpause", 3) == ErrorReply(
        "ERR wrong number of arguments for 'client|unpause' command"
    )
    assert pause_arity_error(b"pause", 4) is None
    assert client_pause_command(pause, b"unpause", []) == OK and not pause.active


def test_save_and_bgsave_answer_as_redis() -> None:
    ctx, conn = cast(Any, None), cast(Any, None)
    assert save(ctx, conn, []) == OK
    assert bgsave(ctx, conn, []) == SimpleString("Background saving started")
    assert bgsave(ctx, conn, [b"SCHEDULE"]) == SimpleString("Background saving started")
    assert bgsave(ctx, conn, [b"x"]) == ErrorReply("ERR syntax error")
