"""What a blocking command (BLPOP, BZPOPMIN, BLMOVE, ...) tells the node when it must wait.

A blocking command travels through Raft like any write. Applied, it either serves the
client at once (an element was there) or, finding every key empty, writes nothing and
returns `Blocked`: the keys to wait on and the timeout. The region leader's node then parks
the client on those keys, first come first served, and proposes the command again when an
applied write touches one of them, until it is served or its timeout passes (the node
answers the timeout's null reply itself). Followers applying the same entry get the same
`Blocked` and ignore it. One mechanism serves the lists, the sorted sets and, later,
XREAD BLOCK and WAIT.

`Blocked` is an `ErrorReply` so that it flows through every reply path unchanged; a path
that does not know it (it must not happen) shows the client a clear error, not a hang.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import ErrorReply
from cairn.store.commands.common import fail
from cairn.store.numbers import LLONG_MAX, is_finite, parse_ll, parse_long_double

_NOT_FLOAT = ErrorReply("ERR timeout is not a float or out of range")
_NEGATIVE = ErrorReply("ERR timeout is negative")


@dataclass(frozen=True, slots=True)
class Blocked(ErrorReply):
    """A blocking command found nothing to serve: park the client on `keys` (in order)
    for `timeout_ms` (0: no timeout). `retry_args` (empty: none) are the arguments later
    attempts run with instead of the client's: XREAD BLOCK resolves `$` to the stream's
    last id at its first attempt and must wait for entries after that id, not after the
    last id of each later attempt."""

    keys: tuple[bytes, ...] = ()
    timeout_ms: int = 0
    retry_args: tuple[bytes, ...] = ()


BLOCKED_MESSAGE = "ERR blocking command could not wait on this node"
"""The text of every `Blocked` reply: how a node recognises one that was forwarded to the
region's leader and came back as bytes."""


_RETRY_MARK = " retry"


def blocked(
    keys: tuple[bytes, ...], timeout_ms: int, retry_args: tuple[bytes, ...] = ()
) -> Blocked:
    """The outcome of a blocking command that must wait on `keys`; `retry_args` (if any)
    travel in the message too (hex), so that a forwarded attempt's reply bytes keep them."""
    message = BLOCKED_MESSAGE
    if retry_args:
        message += _RETRY_MARK + "".join(" " + arg.hex() for arg in retry_args)
    return Blocked(message, keys, timeout_ms, retry_args)


def blocked_retry_args(message: str) -> tuple[bytes, ...] | None:
    """The retry arguments a `Blocked` reply's message carries (empty: retry as sent);
    None when `message` is not a `Blocked` one (or is malformed)."""
    if message == BLOCKED_MESSAGE:
        return ()
    head = BLOCKED_MESSAGE + _RETRY_MARK + " "
    if not message.startswith(head):
        return None
    try:
        return tuple(bytes.fromhex(part) for part in message[len(head) :].split(" "))
    except ValueError:
        return None


def timeout_argument(name: str, argv: Sequence[bytes]) -> bytes:
    """Where blocking command `name` (argv with the name first) takes its timeout: second
    for BLMPOP and BZMPOP, after BLOCK (before STREAMS; b"0" without it) for XREAD, last
    for the others."""
    if name in _MS_TIMEOUTS:
        return _xread_block(argv)
    return argv[1] if name in ("blmpop", "bzmpop") else argv[-1]


_MS_TIMEOUTS = frozenset({"xread", "xreadgroup"})
"""The commands whose timeout is a BLOCK option in integer milliseconds."""


def _xread_block(argv: Sequence[bytes]) -> bytes:
    """XREAD's (and XREADGROUP's) BLOCK argument, scanning the options as XREAD does
    (b"0": none; GROUP's two names are skipped)."""
    found = b"0"
    i = 1
    while i < len(argv) - 1:
        option = argv[i].lower()
        if option == b"streams":
            break
        if option in (b"block", b"count"):
            if option == b"block":
                found = argv[i + 1]
            i += 1
        elif option == b"group":
            i += 2
        i += 1
    return found


def command_timeout_ms(name: str, argv: Sequence[bytes]) -> int:
    """Blocking command `name`'s timeout in ms (0: none): XREAD's BLOCK is integer ms, the
    others' timeouts are seconds (`parse_timeout`). CommandError if malformed."""
    if name in _MS_TIMEOUTS:
        return parse_ms_timeout(timeout_argument(name, argv))
    return parse_timeout(timeout_argument(name, argv))


_NOT_INTEGER = ErrorReply("ERR timeout is not an integer or out of range")


def parse_ms_timeout(data: bytes) -> int:
    """A timeout in integer ms (XREAD BLOCK), with Redis 7.0's errors."""
    value = parse_ll(data)
    if value is None:
        raise fail(_NOT_INTEGER)
    if value < 0:
        raise fail(_NEGATIVE)
    return value


def parse_timeout(data: bytes) -> int:
    """A blocking command's timeout argument (seconds, decimals allowed) in ms, parsed and
    rounded up as Redis 7.0's `getTimeoutFromObjectOrReply` does, with its errors."""
    seconds = parse_long_double(data)
    if seconds is None:
        raise fail(_NOT_FLOAT)
    # Redis 7.0 casts the rounded value to a long long: anything past its range (infinity
    # included) wraps to a negative number, hence "negative" for 1e30 and inf.
    if not is_finite(seconds) or seconds * 1000 > LLONG_MAX:
        raise fail(_NEGATIVE)
    rounded = math.ceil(seconds * 1000)
    if rounded < 0:
        raise fail(_NEGATIVE)
    return rounded
