"""The CLI's rough edges of issue 8: each test fails on the CLI as it was before it.

One database, every event timed (from 10:00:00 UTC on 2026-11-01, one
second apart), so that "as of" a position or a time is exact:

====  ======  =====================================
 pos  time    event
====  ======  =====================================
   1  :00     RunStarted nightly-1 (training)
   2  :01     StepStarted train
   3  :02     train: loss=0.25
   4  :03     ArtifactVersionRegistered dataset
   5  :04     train: loss=0.125
   6  :05     StepFinished train
   7  :06     RunFinished nightly-1 completed
   8  :07     RunStarted nightly-2 (training)
====  ======  =====================================
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import re
from pathlib import Path

import msgspec
import pytest

from metastream.cli import _parser, _subparsers, main
from metastream.cli.colour import Palette, enabled, join
from metastream.cli.common import ProgressBar, echo
from metastream.schemas.text import has_control_characters
from tests.events import Pipeline, artifact
from tests.unit.cli_helpers import projected_db, run

BASE = datetime.datetime(2026, 11, 1, 10, 0, 0, tzinfo=datetime.UTC).timestamp()
SGR = re.compile(r"\x1b\[[0-9;]*m")


def at(event: msgspec.Struct, second: int) -> msgspec.Struct:
    return msgspec.structs.replace(event, ts=BASE + second)


def second(n: int) -> str:
    return datetime.datetime.fromtimestamp(BASE + n, datetime.UTC).isoformat()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "m.db"
    first, later = Pipeline("nightly-1", "training"), Pipeline("nightly-2", "training")
    events = [
        first.started(),
        first.step("train"),
        first.on_step("train", loss=0.25),
        artifact("dataset", "1", run=first),
        first.on_step("train", loss=0.125),
        first.step_done("train"),
        first.finished(),
        later.started(),
    ]
    timed = [at(e, i) for i, e in enumerate(events)]
    return projected_db(path, timed)


def one_line_error(code: int, err: str) -> str:
    assert code == 1
    assert err.startswith("metastream: ")
    assert len(err.strip().splitlines()) == 1, err
    return err


# -- --version, --db after the command, help everywhere -----------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "metastream 0.1.0"


def test_db_after_the_command(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "run", "nightly-1", "--db", str(db))
    assert code == 0, err
    assert "run:       nightly-1" in out
    code, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1")  # still before
    assert code == 0
    assert "run:       nightly-1" in out
    code, _, err = run(capsys, "--db", "/nowhere.db", "runs", "--db", str(db))  # after wins
    assert code == 0, err


def test_commands_that_make_their_own_database_do_not_offer_db(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in (["bench", "ui"], ["bench", "e2e"], ["schema", "asyncapi"]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--db", "/tmp/ignored.db"])
        assert exit_.value.code == 2
        assert "unrecognized arguments: --db" in capsys.readouterr().err


def test_every_command_and_argument_has_help() -> None:
    parser = _parser()
    missing = []
    for child in [parser, *_subparsers(parser)]:
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing.extend(
                    f"{child.prog} {choice.dest}"
                    for choice in action._choices_actions
                    if not choice.help
                )
            elif not action.help:  # argparse.SUPPRESS: an internal option, hidden on purpose
                missing.append(f"{child.prog} {'/'.join(action.option_strings) or action.dest}")
        if child is not parser:
            assert child.description, f"{child.prog} -h says nothing about what it does"
    assert missing == []


# -- a step by name without its run -------------------------------------------


@pytest.mark.parametrize("argv", [["show", "step", "train"], ["history", "step", "train", "loss"]])
def test_a_step_name_without_a_run_says_how_to_name_it(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = one_line_error(*run(capsys, "--db", str(db), *argv)[::2])
    assert "a step is named within a run: pass --run RUN, or its id" in err
    assert "'nightly-1'" in err  # the run that has one
    assert "UUID" not in err


def test_a_step_by_id_needs_no_run(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--json")
    (train,) = json.loads(out)["steps"]
    code, out, err = run(capsys, "--db", str(db), "show", "step", train["id"])
    assert code == 0, err
    assert "step:      train" in out
    code, out, err = run(capsys, "--db", str(db), "history", "step", train["id"], "loss")
    assert code == 0, err
    assert [line.split()[-1] for line in out.splitlines()[2:]] == ["0.25", "0.125"]


# -- history of a rollup key ---------------------------------------------------


def test_history_of_a_rollup_key_is_the_steps_history(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", str(db), "history", "run", "nightly-1", "train::loss")
    assert code == 0, err
    assert [line.split()[0::5] for line in out.splitlines()[2:]] == [["3", "0.25"], ["5", "0.125"]]
    _, shown, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1")
    assert any(line.split() == ["train::loss", "0.125"] for line in shown.splitlines())


# -- "as of" applies to the registry ------------------------------------------


def test_as_of_a_position_shows_the_run_as_it_was(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--as-of", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert "status:    running" in lines
    assert "finished:  -" in lines
    assert any(line.split() == ["train::loss", "0.25"] for line in lines)
    steps = lines[lines.index("steps:") + 3]
    assert steps.split()[:2] == ["train", "running"]
    assert "artifacts:" not in lines  # registered at position 4

    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--as-of", "7")
    lines = out.splitlines()
    assert "status:    completed" in lines
    assert lines[lines.index("artifacts:") + 3].split() == [
        "dataset",
        "1",
        "2026-11-01",
        "10:00:03",
        "UTC",
    ]

    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--as-of", "4", "--json")
    data = json.loads(out)
    assert (data["status"], data["finished"], data["as_of"]) == ("running", None, "4")
    assert [(s["step"], s["status"]) for s in data["steps"]] == [("train", "running")]
    assert [(a["artifact"], a["version"]) for a in data["artifacts"]] == [("dataset", "1")]
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--as-of", "3", "--json")
    assert json.loads(out)["artifacts"] == []


def test_as_of_a_time_shows_the_step_as_it_was(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--db", str(db), "show", "step", "train", "--run", "nightly-1", "--as-of"]
    _, out, _ = run(capsys, *argv, second(4))
    assert "status:    running" in out.splitlines()
    assert [line.split() for line in out.splitlines() if "loss" in line] == [["loss", "0.125"]]
    _, out, _ = run(capsys, *argv, second(5))
    assert "status:    completed" in out.splitlines()


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["show", "run", "nightly-2", "--as-of", "7"], "pipeline run 'nightly-2'"),
        (["show", "run", "nightly-2", "--as-of", second(6)], "pipeline run 'nightly-2'"),
        (["show", "step", "train", "--run", "nightly-1", "--as-of", "1"], "step 'train'"),
        (["show", "artifact", "dataset", "--as-of", "3"], "artifact 'dataset' version '1'"),
    ],
)
def test_as_of_before_an_entity_existed_says_so(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], what: str
) -> None:
    err = one_line_error(*run(capsys, "--db", str(db), *argv)[::2])
    assert f"{what} did not exist yet as of" in err


# -- events says that more follow ----------------------------------------------


def test_events_says_how_many_more_follow(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--db", str(db), "events", "--limit", "3")
    assert code == 0
    assert len(out.splitlines()) == 3
    assert err.strip() == "5 more events: metastream events --after 3"
    _, out, err = run(capsys, "--db", str(db), "events", "--after", "3", "--json")
    assert [json.loads(line)["position"] for line in out.splitlines()] == [4, 5, 6, 7, 8]
    assert err == ""


# -- foreground up on a running stack -------------------------------------------


def test_up_on_a_running_stack_says_only_that_it_is_up(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    from metastream.stack import local

    record = {"redis_url": "redis://127.0.0.1:1"}
    monkeypatch.setattr(local, "load_stack_file", lambda settings: record)
    monkeypatch.setattr(local, "read_stack_file", lambda settings: record)
    monkeypatch.setattr(local, "problem", lambda url, timeout: None)
    monkeypatch.setattr(local, "dead_consumer", lambda record: None)
    code, out, _ = run(capsys, "up")
    assert code == 0
    assert out.splitlines() == ["metastream is already up at redis://127.0.0.1:1"]


# -- colour on a terminal only ----------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_colour_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_colour_is_on_for_a_terminal_unless_no_color(no_colour_env: pytest.MonkeyPatch) -> None:
    assert enabled(Terminal())
    assert not enabled(io.StringIO())
    no_colour_env.setenv("NO_COLOR", "")  # an empty value does not disable it
    assert enabled(Terminal())
    no_colour_env.setenv("NO_COLOR", "1")
    assert not enabled(Terminal())
    no_colour_env.setenv("FORCE_COLOR", "1")  # NO_COLOR wins
    assert not enabled(io.StringIO())
    no_colour_env.delenv("NO_COLOR")
    assert enabled(io.StringIO())
    no_colour_env.setenv("FORCE_COLOR", "0")
    assert not enabled(io.StringIO())
    no_colour_env.delenv("FORCE_COLOR")
    no_colour_env.setenv("TERM", "dumb")
    assert not enabled(Terminal())


def test_statuses_in_colour_and_headers_bold(
    db: Path, capsys: pytest.CaptureFixture[str], no_colour_env: pytest.MonkeyPatch
) -> None:
    _, plain, _ = run(capsys, "--db", str(db), "runs")
    assert "\x1b" not in plain  # tests capture output: not a terminal
    no_colour_env.setenv("FORCE_COLOR", "1")
    _, out, _ = run(capsys, "--db", str(db), "runs")
    assert "\x1b[32mcompleted" in out
    assert "\x1b[33mrunning" in out
    assert out.splitlines()[0].startswith("\x1b[1mrun")
    assert SGR.sub("", out) == plain  # the same text, widths unchanged
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1")
    assert "status:    \x1b[32mcompleted\x1b[0m" in out.splitlines()
    no_colour_env.setenv("NO_COLOR", "1")
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1")
    assert "\x1b" not in out


@pytest.mark.parametrize("status", ["running", "unknown"])
def test_colour_never_lets_a_user_string_through(status: str) -> None:
    out = io.StringIO()
    echo([join("status: ", Palette(True).status(f"{status}\x1b]0;pwned\x07"))], file=out)
    assert r"\x1b]0;pwned\x07" in out.getvalue()
    assert not has_control_characters(SGR.sub("", out.getvalue()).strip())


# -- progress off a terminal ------------------------------------------------------


def test_progress_off_a_terminal_is_a_line_per_tenth_with_the_summarys_rate() -> None:
    out = io.StringIO()
    bar = ProgressBar("replay", file=out)
    for done in range(1, 1001):
        bar(done, 1000)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10
    assert [line.split()[2] for line in lines] == [f"{n * 100:,}/1,000" for n in range(1, 11)]
    assert lines[-1].endswith(f"({bar.rate(1000):,.0f}/s)")


def test_replay_states_the_rate_its_progress_showed(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", str(db), "replay")
    assert code == 0
    progress = err.splitlines()
    assert progress, "no progress shown off a terminal"
    assert all(line.startswith("replay [") for line in progress)
    assert "\r" not in err
    last_rate = progress[-1].rsplit("(", 1)[1]
    assert out.strip().startswith("rebuilt all projections from 8 events")
    assert out.strip().endswith(f"({last_rate}")
