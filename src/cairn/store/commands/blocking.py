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
from cairn.store.numbers import LLONG_MAX, is_finite, parse_long_double

_NOT_FLOAT = ErrorReply("ERR timeout is not a float or out of range")
_NEGATIVE = ErrorReply("ERR timeout is negative")


@dataclass(frozen=True, slots=True)
class Blocked(ErrorReply):
    """A blocking command found nothing to serve: park the client on `keys` (in order)
    for `timeout_ms` (0: no timeout)."""

    keys: tuple[bytes, ...] = ()
    timeout_ms: int = 0


BLOCKED_MESSAGE = "ERR blocking command could not wait on this node"
"""The text of every `Blocked` reply: how a node recognises one that was forwarded to the
region's leader and came back as bytes."""


def blocked(keys: tuple[bytes, ...], timeout_ms: int) -> Blocked:
    """The outcome of a blocking command that must wait on `keys`."""
    return Blocked(BLOCKED_MESSAGE, keys, timeout_ms)


def timeout_argument(name: str, argv: Sequence[bytes]) -> bytes:
    """Where blocking command `name` (argv with the name first) takes its timeout: second
    for BLMPOP and BZMPOP, last for the others."""
    return argv[1] if name in ("blmpop", "bzmpop") else argv[-1]


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
