"""The history format: JSON-lines round trip, pairing, and malformed input."""

from __future__ import annotations

import io
import json

import pytest

from cairn.check.history import (
    HistoryError,
    Op,
    OpType,
    complete_operations,
    read_jsonl,
    write_jsonl,
)

INVOKE, OK, FAIL, INFO = OpType.INVOKE, OpType.OK, OpType.FAIL, OpType.INFO

SAMPLE = [
    Op(1, INVOKE, "put", "x", "1", 10),
    Op(2, INVOKE, "get", "x", None, 12),
    Op(1, OK, "put", "x", "1", 20),
    Op(2, OK, "get", "x", "1", 25),
    Op(3, INVOKE, "cas", "x", ("1", "2"), 30),
    Op(4, INVOKE, "cas", "y", (None, "é\n"), 31),
    Op(3, FAIL, "cas", "x", ("1", "2"), 40),
    Op(4, INFO, "cas", "y", None, 41),
    Op(5, INVOKE, "append", "y", "tail", 50),
    Op(6, INVOKE, "get", "z", None, 51),
    Op(6, OK, "get", "z", None, 52),
]


def _read(text: str) -> list[Op]:
    return read_jsonl(io.StringIO(text))


def _line(**fields: object) -> str:
    record: dict[str, object] = {
        "process": 1,
        "type": "invoke",
        "f": "get",
        "key": "x",
        "value": None,
        "time": 1,
    }
    record.update(fields)
    return json.dumps(record) + "\n"


def test_round_trip_keeps_every_field() -> None:
    buf = io.StringIO()
    write_jsonl(SAMPLE, buf)
    assert buf.getvalue().count("\n") == len(SAMPLE)
    assert read_jsonl(io.StringIO(buf.getvalue())) == SAMPLE


def test_written_lines_are_the_documented_objects() -> None:
    buf = io.StringIO()
    write_jsonl(SAMPLE[4:5], buf)
    assert json.loads(buf.getvalue()) == {
        "process": 3,
        "type": "invoke",
        "f": "cas",
        "key": "x",
        "value": ["1", "2"],
        "time": 30,
    }


def test_blank_lines_are_skipped() -> None:
    assert _read("\n" + _line() + "\n  \n") == [Op(1, INVOKE, "get", "x", None, 1)]


def test_pairing_makes_intervals_and_open_ends() -> None:
    ops = complete_operations(SAMPLE)
    assert [(o.f, o.key, o.status, o.call, o.ret) for o in ops] == [
        ("put", "x", OK, 10, 20),
        ("get", "x", OK, 12, 25),
        ("cas", "x", FAIL, 30, 40),
        ("cas", "y", INFO, 31, None),
        ("append", "y", INFO, 50, None),  # never completed: outcome unknown
        ("get", "z", OK, 51, 52),
    ]
    assert ops[1].output == "1"
    assert ops[3].input == (None, "é\n")


def test_process_may_invoke_again_after_info() -> None:
    ops = complete_operations(
        [
            Op(1, INVOKE, "put", "x", "a", 1),
            Op(1, INFO, "put", "x", "a", 5),
            Op(1, INVOKE, "get", "x", None, 6),
            Op(1, OK, "get", "x", "a", 7),
        ]
    )
    assert [(o.status, o.ret) for o in ops] == [(INFO, None), (OK, 7)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json\n", "line 1: not JSON"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
        (_line(time=None), "line 1: time must be an integer"),
        (_line(time=True), "line 1: time must be an integer"),
        (_line(process="3"), "line 1: process must be an integer"),
        (_line(type="done"), "line 1: type must be one of invoke, ok, fail, info"),
        (_line(f="incr"), "line 1: unknown function 'incr'"),
        (_line(key=7), "line 1: key must be a string"),
        (_line(value="x"), "line 1: a get's invoke value must be null"),
        (_line(f="put", value=None), "line 1: a put value must be a string"),
        (_line(f="cas", value=["a"]), "line 1: a cas value must be [expected|null, new]"),
        (_line(f="cas", value=["a", None]), "line 1: a cas value must be [expected|null, new]"),
        (_line(extra=1), "line 1: missing fields [] / unexpected fields ['extra']"),
        ('{"process": 1}\n', "line 1: missing fields ['type', 'f', 'key', 'value', 'time']"),
        (_line(type="ok", value=3), "line 1: a get's ok value must be a string or null"),
    ],
)
def test_malformed_events_name_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(HistoryError) as err:
        _read(_line(process=9) + text)  # a good line first: the number must be counted
    assert str(err.value).startswith(message.replace("line 1", "line 2"))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [_line(type="ok", value="1")],
            "line 1: event #0 (ok get('x', '1') by process 1 at t=1): ok without an outstanding"
            " invocation by process 1",
        ),
        (
            [_line(), _line(time=2)],
            "line 2: event #1 (invoke get('x', None) by process 1 at t=2): process 1 already has"
            " event #0 outstanding",
        ),
        (
            [_line(time=5), _line(type="ok", time=4)],
            "line 2: event #1 (ok get('x', None) by process 1 at t=4): time goes backwards for"
            " process 1 (previous event at t=5)",
        ),
        ([_line(), _line(type="ok", key="y")], "does not match the outstanding get('x')"),
        (
            [_line(f="put", value="a"), _line(f="put", type="ok", value="b", time=2)],
            "carries a value other than the invocation's 'a'",
        ),
        ([_line(), _line(type="info", value="late", time=2)], "a get's info value must be null"),
    ],
)
def test_malformed_pairing_is_rejected(lines: list[str], message: str) -> None:
    with pytest.raises(HistoryError) as err:
        _read("".join(lines))
    assert message in str(err.value)


def test_complete_operations_rejects_ops_built_in_code() -> None:
    with pytest.raises(HistoryError, match=r"^event #1 .*time goes backwards for process 1"):
        complete_operations([Op(1, INVOKE, "get", "x", None, 9), Op(1, OK, "get", "x", None, 8)])
    with pytest.raises(HistoryError, match=r"^event #0 .*process must be an integer"):
        complete_operations([Op(True, INVOKE, "get", "x", None, 1)])
    with pytest.raises(HistoryError, match="unknown function 'del'"):
        complete_operations([Op(1, INVOKE, "del", "x", None, 1)])
