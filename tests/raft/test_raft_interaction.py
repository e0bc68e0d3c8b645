"""Golden interaction tests: every `testdata/*.txt` file is a scripted story of a cluster.

Run `pytest tests/raft --rewrite` to regenerate the expected outputs, then read the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datadriven import run_file
from interaction_commands import handle
from interaction_env import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_interaction(path: Path, rewrite: bool) -> None:
    env = InteractionEnv()
    run_file(path, lambda case: handle(env, case), rewrite=rewrite)


def test_there_are_golden_files() -> None:
    assert len(FILES) >= 10


def test_unknown_commands_and_bad_arguments_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("# a typo\nfrobnicate 1\n----\n")
    env = InteractionEnv()
    with pytest.raises(ValueError, match=r"bad\.txt:2: frobnicate: unknown command"):
        run_file(path, lambda case: handle(env, case))


def test_a_story_can_start_from_a_snapshot_index(tmp_path: Path) -> None:
    path = tmp_path / "index.txt"
    path.write_text(
        "add-nodes 2 voters=(1,2) index=5 pre-vote=false\n----\n\n"
        "log-level silent\n----\n\ncampaign 1\n----\n\nstabilize\n----\n\n"
        "log-level info\n----\n\nraft-log 2\n----\n"
    )
    env = InteractionEnv()
    run_file(path, lambda case: handle(env, case), rewrite=True)
    assert path.read_text().endswith('raft-log 2\n----\n2/6 EntryNormal ""\n')
