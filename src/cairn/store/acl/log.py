"""ACL LOG: the node's recent denials and failed AUTHs, grouped as Redis groups them.

An entry is (reason, context, object, username); one equal to a recent entry (younger
than `GROUP_WINDOW_MS`) counts there instead of making a new one, and the newest comes
first. Times are this node's wall clock in milliseconds, passed in (the log is pure):
each node keeps its own log, as each Redis server does.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP_WINDOW_MS = 60_000
DEFAULT_MAX_LEN = 128
"""Redis' acllog-max-len default."""


@dataclass(slots=True)
class LogEntry:
    """One ACL LOG entry."""

    reason: str
    context: str
    object: str
    username: str
    created_ms: int
    updated_ms: int
    client_info: str
    count: int = 1


class AclLog:
    """The newest-first list of entries, at most `max_len`."""

    def __init__(self, max_len: int = DEFAULT_MAX_LEN) -> None:
        self.max_len = max_len
        self.entries: list[LogEntry] = []

    def add(
        self,
        reason: str,
        obj: str,
        username: str,
        client_info: str,
        now_ms: int,
        context: str = "toplevel",
    ) -> None:
        """Record one denial (`reason` "command", "key", "channel" or "auth")."""
        for i, entry in enumerate(self.entries):
            if now_ms - entry.created_ms >= GROUP_WINDOW_MS:
                break
            same = (entry.reason, entry.context, entry.object, entry.username)
            if same == (reason, context, obj, username):
                entry.count += 1
                entry.updated_ms = now_ms
                entry.client_info = client_info
                self.entries.insert(0, self.entries.pop(i))
                return
        self.entries.insert(
            0, LogEntry(reason, context, obj, username, now_ms, now_ms, client_info)
        )
        del self.entries[self.max_len :]

    def reset(self) -> None:
        """ACL LOG RESET."""
        self.entries.clear()

    def newest(self, count: int) -> list[LogEntry]:
        """The `count` newest entries."""
        return self.entries[:count]
