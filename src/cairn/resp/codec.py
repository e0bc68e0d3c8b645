"""The sans-I/O RESP codec: the request parser and the reply encoder in one place.

    parser = RequestParser(Limits())
    parser.feed(data)                       # whatever the socket delivered
    while (command := parser.next_command()) is not NEED_DATA:
        replies.append(run(command))        # command: list[bytes], never empty
    transport.write(encode_many(replies, protocol))

`next_command` raises `RemoteProtocolError` for input Redis would refuse; answer its
`error_reply` (when not None) and close. Nothing here does I/O.
"""

from __future__ import annotations

from cairn.resp.encoder import encode, encode_many, format_double
from cairn.resp.errors import (
    LocalProtocolError,
    ProtocolError,
    QueryBufferLimitError,
    RemoteProtocolError,
)
from cairn.resp.parser import DEFAULT_LIMITS, NEED_DATA, Limits, NeedData, RequestParser

__all__ = [
    "DEFAULT_LIMITS",
    "NEED_DATA",
    "Limits",
    "LocalProtocolError",
    "NeedData",
    "ProtocolError",
    "QueryBufferLimitError",
    "RemoteProtocolError",
    "RequestParser",
    "encode",
    "encode_many",
    "format_double",
]
