"""Errors of the RESP codec.

Two kinds, as in h11: `RemoteProtocolError` means the client sent bytes Redis would
refuse (the server answers `error_reply`, if any, then closes the connection);
`LocalProtocolError` means this process misused the codec (a bug here, never the
client's doing).
"""

from __future__ import annotations

from cairn.resp.reply import ErrorReply


class ProtocolError(Exception):
    """Base class of the codec's errors."""


class LocalProtocolError(ProtocolError):
    """The codec was misused by this process, e.g. asked to encode something that is no reply."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the connection must be closed.

    `str(error)` is the text Redis puts after `-ERR ` (for example `Protocol error:
    invalid bulk length`). When `reply` is true the server sends `error_reply` before
    closing, as Redis does; when false it closes silently, as Redis does when a client
    overflows its query buffer.
    """

    def __init__(self, message: str, *, reply: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.reply = reply

    @property
    def error_reply(self) -> ErrorReply | None:
        """The `-ERR ...` reply Redis sends for this error, or None when it sends nothing."""
        return ErrorReply("ERR " + self.message) if self.reply else None


class QueryBufferLimitError(RemoteProtocolError):
    """The client's unprocessed input outgrew `Limits.max_buffer`; Redis closes without a reply."""

    def __init__(self, held: int, limit: int) -> None:
        super().__init__(
            f"query buffer limit exceeded: {held} bytes held, limit {limit}", reply=False
        )
        self.held = held
        self.limit = limit
