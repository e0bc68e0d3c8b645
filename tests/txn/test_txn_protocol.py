"""Reading the `cairn.txn.*` replies and `-LOCKED` errors: every documented shape, and
anything else read as a failure, never a crash."""

from __future__ import annotations

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, NullBulk
from cairn.txn.protocol import (
    AsyncPrimary,
    Conflict,
    Failed,
    Loaded,
    Status,
    check_secondaries_argv,
    prewrite_argv,
    read_check,
    read_lock,
    read_locked_error,
    read_status,
    read_txn_status,
)
from cairn.txn.protocol import Effect as TxnEffect


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


def test_async_status_replies() -> None:
    listed = Array((Bulk(b"x"), Bulk(b"y")))
    assert read_txn_status(Array((Bulk(b"async"), Integer(5), listed))) == AsyncPrimary(
        5, (b"x", b"y")
    )
    assert read_txn_status(Array((Bulk(b"committed"), Integer(9)))) == Status(b"committed", 9)
    for bad in (
        Array((Bulk(b"async"), Integer(5))),
        Array((Bulk(b"async"), Bulk(b"no"), listed)),
        Array((Bulk(b"async"), Integer(5), Array((Integer(1),)))),
        Array((Bulk(b"async"), Integer(5), Bulk(b"x"))),
        ErrorReply("TRYAGAIN"),
    ):
        assert isinstance(read_txn_status(bad), Failed), bad


def test_check_replies() -> None:
    words = (b"prewritten", b"rolledback", b"missing")
    ok = Array((Bulk(b"ok"), Array(tuple(Bulk(w) for w in words))))
    assert read_check(ok, 3) == list(words)
    for bad, count in (
        (ok, 2),
        (Array((Bulk(b"ok"), Array((Bulk(b"maybe"),)))), 1),
        (Array((Bulk(b"ok"), Array((Integer(1),)))), 1),
        (Array((Bulk(b"ok"),)), 0),
        (ErrorReply("CROSSSLOT"), 1),
    ):
        assert isinstance(read_check(bad, count), Failed), bad


def test_async_argvs() -> None:
    effects = [TxnEffect(b"p", 2)]
    assert prewrite_argv(7, effects, [b"s"]) == [
        b"cairn.txn.prewrite", b"7", b"1", b"p", b"2", b"0", b"", b"1", b"s"
    ]
    assert prewrite_argv(7, effects) == [b"cairn.txn.prewrite", b"7", b"1", b"p", b"2", b"0", b""]
    assert check_secondaries_argv(7, [b"a", b"b"]) == [
        b"cairn.txn.check_secondaries", b"7", b"a", b"b"
    ]
