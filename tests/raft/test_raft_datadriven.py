"""Tests of the datadriven golden-file runner itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from datadriven import CmdArg, ParseError, TestCase, parse_arg, parse_file, run_file, tokenize


def echo(case: TestCase) -> str:
    """A handler that shows what the runner parsed."""
    args = " ".join(f"<{a.key}:{'|'.join(a.vals)}>" for a in case.args)
    return f"{case.cmd} {args}\n{case.input}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.txt"
    path.write_text(text)
    return path


def test_tokenize_keeps_lists_and_quotes_whole() -> None:
    assert tokenize('propose 1 "a b"  voters=(1, 2,3) x=y') == [
        "propose",
        "1",
        '"a b"',
        "voters=(1, 2,3)",
        "x=y",
    ]


def test_tokenize_rejects_unbalanced_input() -> None:
    with pytest.raises(ValueError):
        tokenize("voters=(1,2")
    with pytest.raises(ValueError):
        tokenize('propose 1 "abc')


@pytest.mark.parametrize(
    ("token", "arg"),
    [
        ("campaign", CmdArg("campaign")),
        ("x=1", CmdArg("x", ("1",))),
        ("voters=(1, 2,3)", CmdArg("voters", ("1", "2", "3"))),
        ("drop=()", CmdArg("drop", ())),
        ('"a b"', CmdArg("a b")),
        ('ctx="q 1"', CmdArg("ctx", ("q 1",))),
    ],
)
def test_parse_arg(token: str, arg: CmdArg) -> None:
    assert parse_arg(token) == arg


def test_cmdarg_prints_as_written() -> None:
    assert str(CmdArg("voters", ("1", "2"))) == "voters=(1,2)"
    assert str(CmdArg("x", ("1",))) == "x=1"
    assert str(CmdArg("bare")) == "bare"


def test_parse_file_reads_commands_inputs_and_outputs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# a comment\n"
        "cmd a=1 b=(2,3) c\n"
        "input line\n"
        "----\n"
        "out 1\n"
        "out 2\n"
        "\n"
        "other \\\n"
        "  continued\n"
        "----\n"
        "----\n"
        "block\n"
        "\n"
        "with blank\n"
        "----\n"
        "----\n"
        "\n"
        "empty\n"
        "----\n",
    )
    _, cases = parse_file(path)
    assert [c.cmd for c in cases] == ["cmd", "other", "empty"]
    first, second, third = cases
    assert first.line == 2
    assert first.args == [CmdArg("a", ("1",)), CmdArg("b", ("2", "3")), CmdArg("c")]
    assert first.positional() == ["c"]
    assert first.arg("b") == CmdArg("b", ("2", "3"))
    assert first.input == "input line\n"
    assert first.expected == "out 1\nout 2\n"
    assert second.args == [CmdArg("continued")]
    assert second.block_form
    assert second.expected == "block\n\nwith blank\n"
    assert third.expected == ""


def test_parse_file_reports_a_missing_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "# c\ncmd\nno separator\n")
    with pytest.raises(ParseError, match=r"case\.txt:2"):
        parse_file(path)


def test_parse_file_reports_an_unclosed_block(tmp_path: Path) -> None:
    path = write(tmp_path, "cmd\n----\n----\nout\n----\n")
    with pytest.raises(ParseError, match="not closed"):
        parse_file(path)


def test_run_file_passes_when_outputs_match(tmp_path: Path) -> None:
    path = write(tmp_path, "cmd x=1\n----\ncmd <x:1>\n\n# end\n")
    run_file(path, echo)


def test_run_file_names_file_and_line_with_a_diff(tmp_path: Path) -> None:
    path = write(tmp_path, "# c\n\ncmd x=1\n----\ncmd <x:2>\n")
    with pytest.raises(AssertionError) as info:
        run_file(path, echo)
    message = str(info.value)
    assert "case.txt:3" in message
    assert "-cmd <x:2>" in message
    assert "+cmd <x:1>" in message


def test_run_file_stops_at_the_first_mismatch(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(case: TestCase) -> str:
        seen.append(case.cmd)
        return "wrong"

    path = write(tmp_path, "a\n----\nright\n\nb\n----\nright\n")
    with pytest.raises(AssertionError):
        run_file(path, handler)
    assert seen == ["a"]


def test_rewrite_replaces_outputs_and_keeps_comments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# header\n"
        "\n"
        "cmd x=1\n"
        "----\n"
        "stale\n"
        "stale too\n"
        "\n"
        "# middle\n"
        "blank\n"
        "----\n"
        "\n"
        "last y\n"
        "in\n"
        "----\n"
        "----\n"
        "old\n"
        "\n"
        "block\n"
        "----\n"
        "----\n",
    )
    outputs = {"cmd": "new\n", "blank": "one\n\ntwo", "last": "plain"}
    run_file(path, lambda c: outputs[c.cmd], rewrite=True)
    assert path.read_text() == (
        "# header\n"
        "\n"
        "cmd x=1\n"
        "----\n"
        "new\n"
        "\n"
        "# middle\n"
        "blank\n"
        "----\n"
        "----\n"
        "one\n"
        "\n"
        "two\n"
        "----\n"
        "----\n"
        "\n"
        "last y\n"
        "in\n"
        "----\n"
        "plain\n"
    )
    run_file(path, lambda c: outputs[c.cmd])  # the rewritten file now passes


def test_rewrite_of_an_empty_output_keeps_the_next_case_apart(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n----\n----\nx\n----\n----\n# next\nb\n----\ny\n")
    outputs = {"a": "", "b": "y"}
    run_file(path, lambda c: outputs[c.cmd], rewrite=True)
    assert path.read_text() == "a\n----\n\n# next\nb\n----\ny\n"
    _, cases = parse_file(path)
    assert [(c.cmd, c.expected) for c in cases] == [("a", ""), ("b", "y\n")]


def test_outputs_are_normalized(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n----\nx\ny\n")
    run_file(path, lambda c: "x   \ny\n\n\n")
