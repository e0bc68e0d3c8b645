"""Named failure-injection points, switched on by tests and the chaos runner.

Theory of operation (after TiKV's fail-rs). Code that can fail in the real world marks
the spot with `fail_point("layer.what")`. Nothing is enabled by default, and then the
call costs one truthiness test of an empty dict. A test enables a point with an action:

    failpoints.enable("storage.lmdb.sync", failpoints.Return())   # the next fsync fails
    failpoints.enable("storage.lmdb.commit", failpoints.Sleep(0.2), times=1)

`Return` raises an error at the site (fail-rs's `return(err)`: in Python the early return
of an error is a raise), by default an `InjectedError`, an `OSError` with `EIO`, so the
site's ordinary disk-error handling runs. `Sleep` stalls the caller. `Panic` raises
`FailpointPanic`, a `BaseException` that `except Exception` does not swallow, standing
for a crash at that line. `Call` runs any function (a test's probe). `configure` accepts
fail-rs-like text (`"2*return(ENOSPC)"`, `"sleep(50)"`, `"panic"`, `"off"`), and
`configure_all` a `;`-separated list of `name=spec`, so a process can be set up from a
command line or an environment variable.

The registry is process-wide and not thread-safe: enable and disable from the thread
that runs the code under test. This module imports nothing impure at load time, so any
layer may import it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class InjectedError(OSError):
    """The error a `Return` action raises unless told otherwise."""


class FailpointPanic(BaseException):
    """A simulated crash at a failure point; deliberately not an `Exception`."""


@dataclass(frozen=True, slots=True)
class Return:
    """Raise an error at the site: `error` itself, or `InjectedError(errno, ...)`."""

    error: BaseException | None = None
    errno: int = errno.EIO

    def run(self, name: str) -> None:
        """Raise the configured error."""
        if self.error is not None:
            raise self.error
        raise InjectedError(self.errno, f"injected at failpoint {name!r}")


@dataclass(frozen=True, slots=True)
class Sleep:
    """Stall the caller for `seconds` (a slow disk, a GC pause)."""

    seconds: float

    def run(self, name: str) -> None:
        """Sleep; `time` is imported here so the module stays importable anywhere."""
        import time

        time.sleep(self.seconds)


@dataclass(frozen=True, slots=True)
class Panic:
    """Raise `FailpointPanic` at the site: the process "crashes" on that line."""

    message: str = ""

    def run(self, name: str) -> None:
        """Raise the panic."""
        raise FailpointPanic(self.message or f"panic at failpoint {name!r}")


@dataclass(frozen=True, slots=True)
class Call:
    """Run `fn(name)` at the site; it may raise."""

    fn: Callable[[str], None]

    def run(self, name: str) -> None:
        """Call the function."""
        self.fn(name)


Action = Return | Sleep | Panic | Call
"""What an enabled failure point does when it is reached."""


@dataclass(slots=True)
class _Point:
    """An enabled point. Invariant: `times` is None (forever) or > 0."""

    action: Action
    times: int | None
    skip: int
    hits: int = field(default=0)


_active: dict[str, _Point] = {}
_hits: dict[str, int] = {}


def fail_point(name: str) -> None:
    """Mark a site that can fail; does nothing unless `name` was enabled."""
    if _active:
        _trigger(name)


def _trigger(name: str) -> None:
    point = _active.get(name)
    if point is None:
        return
    point.hits += 1
    _hits[name] = _hits.get(name, 0) + 1
    if point.hits <= point.skip:
        return
    if point.times is not None:
        point.times -= 1
        if point.times == 0:
            del _active[name]
    point.action.run(name)


def enable(name: str, action: Action, *, times: int | None = None, skip: int = 0) -> None:
    """Switch `name` on: after `skip` passes, fire `action` `times` times (None: forever)."""
    if times is not None and times <= 0:
        raise ValueError(f"times must be positive or None, not {times}")
    _active[name] = _Point(action, times, skip)


def disable(name: str) -> None:
    """Switch `name` off (a no-op when it is off)."""
    _active.pop(name, None)


def reset() -> None:
    """Switch every point off and forget the hit counts."""
    _active.clear()
    _hits.clear()


def hits(name: str) -> int:
    """How many times `name` was reached while it was enabled (since the last `reset`)."""
    return _hits.get(name, 0)


def enabled() -> list[str]:
    """The names of the points switched on now, sorted."""
    return sorted(_active)


@contextmanager
def scoped(name: str, action: Action, *, times: int | None = None, skip: int = 0) -> Iterator[None]:
    """Enable `name` for the duration of a `with` block."""
    enable(name, action, times=times, skip=skip)
    try:
        yield
    finally:
        disable(name)


def configure(name: str, spec: str) -> None:
    """Enable or disable `name` from fail-rs-like text.

    The grammar is `[N*]off|return[(ERRNO)]|sleep(MS)|panic[(MESSAGE)]`: `N*` fires N times.
    """
    times, action = parse_spec(spec)
    if action is None:
        disable(name)
    else:
        enable(name, action, times=times)


def configure_all(specs: str) -> None:
    """Apply `name=spec;name=spec...` (empty items are ignored)."""
    for item in specs.split(";"):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"failpoint setting {item!r} is not name=spec")
        configure(name.strip(), spec.strip())


def parse_spec(spec: str) -> tuple[int | None, Action | None]:
    """Parse one action spec into (times, action); action None means `off`."""
    times: int | None = None
    count, star, rest = spec.partition("*")
    if star:
        if not count.isdigit() or int(count) == 0:
            raise ValueError(f"failpoint spec {spec!r}: the count before '*' must be positive")
        times, spec = int(count), rest
    kind, _, arg = spec.partition("(")
    if arg and not arg.endswith(")"):
        raise ValueError(f"failpoint spec {spec!r}: missing ')'")
    return times, _make_action(kind.strip(), arg[:-1].strip(), spec)


def _make_action(kind: str, arg: str, spec: str) -> Action | None:
    if kind == "off" and not arg:
        return None
    if kind == "return":
        return Return(errno=_errno(arg, spec)) if arg else Return()
    if kind == "sleep" and arg:
        return Sleep(float(arg) / 1000.0)
    if kind == "panic":
        return Panic(arg)
    raise ValueError(f"failpoint spec {spec!r}: expected off, return[(ERRNO)], sleep(ms) or panic")


def _errno(arg: str, spec: str) -> int:
    if arg.isdigit():
        return int(arg)
    code = getattr(errno, arg, None)
    if not isinstance(code, int):
        raise ValueError(f"failpoint spec {spec!r}: unknown errno {arg!r}")
    return code
