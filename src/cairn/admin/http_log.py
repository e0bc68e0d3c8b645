"""The admin server's HTTP-level log: malformed requests from clients, without tracebacks.

aiohttp logs every request it cannot parse (a bad request line, header or URL: anything
a scanner, a fuzzer or a confused client sends) as an ERROR with a full traceback, before
any token is checked. A stranger could fill a node's log that way. `http_error_logger()`
is the logger the admin server hands aiohttp instead: such a record becomes one WARNING
line without a traceback, and at most one a second (the next says how many were not
logged). Anything else aiohttp logs passes through unchanged.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

INTERVAL_S = 1.0


class MalformedRequestFilter(logging.Filter):
    """Shortens and rate-limits the records of requests aiohttp could not parse."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        super().__init__()
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to log `record` (rewritten when it is about a malformed request)."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        self._last = now
        reason = " ".join(str(exc.message).split())[:120]
        record.msg = f"malformed HTTP request: {exc.code} {reason}"
        if self._suppressed:
            record.msg += f" ({self._suppressed} more since, not logged)"
        self._suppressed = 0
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def http_error_logger() -> logging.Logger:
    """The logger aiohttp's request handlers of the admin server log to."""
    logger = logging.getLogger("cairn.admin.http")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
    return logger
