"""RESP2/RESP3, the Redis protocol: typed replies (`reply`) and a sans-I/O codec (`codec`).

Pure: no I/O, no clocks, no threads. The server layer feeds received bytes to a
`RequestParser` and writes what `encode` returns.
"""

from cairn.resp.codec import (
    DEFAULT_LIMITS,
    NEED_DATA,
    Limits,
    LocalProtocolError,
    NeedData,
    ProtocolError,
    QueryBufferLimitError,
    RemoteProtocolError,
    RequestParser,
    encode,
    encode_many,
    format_double,
)

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
