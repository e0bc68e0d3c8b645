"""The failpoint registry: off by default, actions, counts, and the text configuration."""

from __future__ import annotations

import errno

import pytest

from cairn.storage import failpoints
from cairn.storage.failpoints import fail_point


def test_points_do_nothing_until_enabled() -> None:
    fail_point("test.site")
    assert failpoints.hits("test.site") == 0
    assert failpoints.enabled() == []


def test_return_raises_an_injected_os_error() -> None:
    failpoints.enable("test.site", failpoints.Return(errno=errno.ENOSPC))
    with pytest.raises(failpoints.InjectedError) as raised:
        fail_point("test.site")
    assert raised.value.errno == errno.ENOSPC
    assert isinstance(raised.value, OSError)
    fail_point("test.other")


def test_return_raises_the_given_error() -> None:
    failpoints.enable("test.site", failpoints.Return(KeyError("boom")))
    with pytest.raises(KeyError, match="boom"):
        fail_point("test.site")


def test_times_and_skip_bound_the_firing() -> None:
    failpoints.enable("test.site", failpoints.Return(), times=2, skip=1)
    fail_point("test.site")
    for _ in range(2):
        with pytest.raises(OSError):
            fail_point("test.site")
    fail_point("test.site")
    assert failpoints.hits("test.site") == 3
    assert failpoints.enabled() == []


def test_panic_is_not_an_exception() -> None:
    failpoints.enable("test.site", failpoints.Panic())
    with pytest.raises(failpoints.FailpointPanic):
        try:
            fail_point("test.site")
        except Exception:  # a crash must not be swallowed by ordinary error handling
            pytest.fail("a panic was caught as an Exception")


def test_sleep_and_call() -> None:
    seen: list[str] = []
    failpoints.enable("test.call", failpoints.Call(seen.append))
    fail_point("test.call")
    failpoints.enable("test.sleep", failpoints.Sleep(0.0))
    fail_point("test.sleep")
    assert seen == ["test.call"]
    assert failpoints.hits("test.sleep") == 1


def test_scoped_switches_off_at_the_end() -> None:
    with failpoints.scoped("test.site", failpoints.Return()):
        assert failpoints.enabled() == ["test.site"]
    fail_point("test.site")


@pytest.mark.parametrize(
    ("spec", "times", "action"),
    [
        ("return", None, failpoints.Return()),
        ("return(ENOSPC)", None, failpoints.Return(errno=errno.ENOSPC)),
        ("3*return(5)", 3, failpoints.Return(errno=5)),
        ("sleep(250)", None, failpoints.Sleep(0.25)),
        ("panic(disk gone)", None, failpoints.Panic("disk gone")),
        ("1*panic", 1, failpoints.Panic()),
        ("off", None, None),
    ],
)
def test_parse_spec(spec: str, times: int | None, action: failpoints.Action | None) -> None:
    assert failpoints.parse_spec(spec) == (times, action)


@pytest.mark.parametrize(
    "spec", ["", "explode", "0*return", "x*return", "sleep", "return(EBOGUS)", "return(5"]
)
def test_parse_spec_rejects_nonsense(spec: str) -> None:
    with pytest.raises(ValueError, match="failpoint"):
        failpoints.parse_spec(spec)


def test_configure_all() -> None:
    failpoints.configure_all("a.b=return; c.d=2*sleep(1);;")
    assert failpoints.enabled() == ["a.b", "c.d"]
    failpoints.configure("a.b", "off")
    assert failpoints.enabled() == ["c.d"]
    with pytest.raises(ValueError, match="not name=spec"):
        failpoints.configure_all("justaname")
