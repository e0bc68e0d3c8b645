"""`CommandError`: how a handler stops with an error reply from anywhere in its call tree.

The machine catches it and aborts the command's write batch, so a command that fails
half-way leaves no trace (Redis commands validate before they write; this makes the same
promise hold structurally).
"""

from __future__ import annotations

from cairn.resp.reply import ErrorReply


class CommandError(Exception):
    """A command failed with `reply`."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply
