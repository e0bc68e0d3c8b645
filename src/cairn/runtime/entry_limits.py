"""The largest replicated write a node accepts (`limits.max_entry_bytes`).

Every write command is one Raft entry: the leader encodes it, writes and fsyncs it to its
log, and sends it to each follower, all on its event loop. A single 64 MiB SET held a
leader's loop for 0.7 s on an idle machine (seconds on a busy one), long enough for its
followers to start an election (defect 3). So a write whose arguments pass the limit is
refused at the edge, before it is forwarded or proposed, with an error that names the
setting; the check runs again where a write is proposed, for one forwarded by a node
configured with a larger limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import ErrorReply


def entry_size(args: Sequence[bytes]) -> int:
    """The argument bytes of a command (its name included): what its entry carries."""
    return sum(len(a) for a in args)


def entry_too_large(args: Sequence[bytes], limit: int) -> ErrorReply | None:
    """The error for a write whose arguments pass `limit` bytes, None if it fits."""
    size = entry_size(args)
    if size <= limit:
        return None
    return ErrorReply(
        f"ERR value too large for one replicated write ({size} bytes; "
        f"limits.max_entry_bytes is {limit})"
    )
