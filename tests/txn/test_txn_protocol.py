"""Reading the `cairn.txn.*` replies and `-LOCKED` errors: every documented shape, and
anything else read as a failure, never a crash."""

from __future__ import annotations

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, NullBulk
from cairn.txn.protocol import (
    Conflict,
    Failed,
    Loaded,
    Status,
    read_lock,
    read_locked_error,
    read_status,
)


def test_lock_replies() -> None:
    ok = Array(
        (
            Bulk(b"ok"),
            Array(
                (
                    Array((Integer(1), Integer(123), Bulk(b"dump"))),
                    Array((Integer(0), Integer(0), NullBulk())),
                )
            ),
        )
    )
    assert read_lock(ok, [b"a", b"b"]) == [
        Loaded(b"a", True, 123, b"dump"),
        Loaded(b"b", False, 0, None),
    ]
    locked = Array((Bulk(b"locked"), Bulk(b"k"), Bulk(b"p"), Integer(42), Integer(0)))
    assert read_lock(locked, [b"k"]) == Conflict(b"k", b"p", 42, 0)
    assert read_lock(Array((Bulk(b"watch"),)), [b"k"]) == Status(b"watch")
    for bad in (
        ErrorReply("TRYAGAIN no leader"),
        OK,
        Array(()),
        Array((Bulk(b"ok"), Array(()))),  # a row missing
        Array((Bulk(b"ok"), Array((Array((Integer(1), Integer(0), NullBulk())),)))),
        Array((Bulk(b"locked"), Bulk(b"k"))),
    ):
        assert isinstance(read_lock(bad, [b"k"]), Failed), bad


def test_status_replies() -> None:
    assert read_status(Array((Bulk(b"ok"),))) == Status(b"ok")
    assert read_status(Array((Bulk(b"committed"), Integer(9)))) == Status(b"committed", 9)
    assert read_status(Array((Bulk(b"lost"), Bulk(b"key")))) == Status(b"lost")
    assert isinstance(read_status(ErrorReply("UNCERTAIN x")), Failed)
    assert read_status(ErrorReply("UNCERTAIN x")).uncertain  # type: ignore[union-attr]
    assert isinstance(read_status(Array((Bulk(b"alive"), Bulk(b"x")))), Failed)


def test_locked_errors() -> None:
    expected = Conflict(b"key", b"pri", 77, 1500)
    text = f"LOCKED 77 1500 {b'pri'.hex()} {b'key'.hex()}"
    assert read_locked_error(ErrorReply(text)) == expected
    assert read_locked_error(b"-" + text.encode() + b"\r\n") == expected
    assert read_locked_error(ErrorReply("LOCKED 77 0 70 ")) == Conflict(b"", b"p", 77, 0)
    for bad in (
        "LOCKED x 1 70 70",
        "LOCKED 1 1 zz 70",
        "LOCKED 1 1 70",
        f"LOCKED {1 << 64} 1 70 70",
        "ERR LOCKED 1 1 70 70",
    ):
        assert read_locked_error(ErrorReply(bad)) is None, bad
    assert read_locked_error(b"+OK\r\n") is None
    assert read_locked_error(OK) is None
