"""``metastream runs`` (``ls``): runs newest first, filtered, as a table or one JSON document."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from pathlib import Path

import msgspec
import pytest

from metastream.projections import Store
from metastream.schemas.jsonform import from_json_form
from tests.events import Pipeline
from tests.unit.cli_helpers import projected_db, run

NOW = time.time()
HOUR = 3600.0


def at(event: msgspec.Struct, ts: float) -> msgspec.Struct:
    return msgspec.structs.replace(event, ts=ts)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Four runs: an old completed one (3 days ago), a failed and a completed one of today,
    a running one of another pipeline (the newest)."""
    path = tmp_path / "m.db"
    old = Pipeline("old-run", "training")
    failed = Pipeline("bad-run", "training")
    good = Pipeline("good-run", "training")
    etl = Pipeline("etl-run", "etl")
    events = [
        at(old.started(), NOW - 72 * HOUR),
        at(old.step("train"), NOW - 72 * HOUR + 1),
        at(old.on_run(lr=0.1), NOW - 72 * HOUR + 2),
        at(old.on_step("train", accuracy=0.5), NOW - 72 * HOUR + 3),
        at(old.finished(), NOW - 72 * HOUR + 65),
        at(failed.started(), NOW - 1.5 * HOUR),
        at(failed.on_run(lr=0.5, note="text is not a column"), NOW - 1.5 * HOUR + 1),
        at(failed.finished("failed"), NOW - 1.5 * HOUR + 2.5),
        at(good.started(), NOW - HOUR),
        at(good.step("train"), NOW - HOUR + 1),
        at(good.on_run(lr=0.01), NOW - HOUR + 2),
        at(good.on_step("train", accuracy=float("nan")), NOW - HOUR + 3),
        at(good.finished(), NOW - HOUR + 4),
        at(etl.started(), NOW - 60),
    ]
    return projected_db(path, events)


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:]]


def test_runs_newest_first_with_status_duration_and_numbers(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", str(db), "runs")
    assert code == 0, err
    assert err == ""
    header = out.splitlines()[0].split()
    assert header == ["run", "pipeline", "status", "started", "duration", "lr", "train::accuracy"]
    assert names(out) == ["etl-run", "good-run", "bad-run", "old-run"]
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert rows["bad-run"].split()[1:3] == ["training", "failed"]
    assert "2.50 s" in rows["bad-run"]
    assert "1 min 05 s" in rows["old-run"]
    assert rows["old-run"].split()[-2:] == ["0.1", "0.5"]
    assert rows["good-run"].split()[-1] == "nan"
    assert rows["etl-run"].split()[1:3] == ["etl", "running"]
    assert rows["etl-run"].split()[-3:] == ["-", "-", "-"]  # no duration, no numbers


def test_ls_is_runs(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, runs_out, _ = run(capsys, "--db", str(db), "runs")
    _, ls_out, _ = run(capsys, "--db", str(db), "ls")
    assert ls_out == runs_out


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--pipeline", "training"], ["good-run", "bad-run", "old-run"]),
        (["--status", "completed"], ["good-run", "old-run"]),
        (["--status", "running"], ["etl-run"]),
        (["--since", "2h"], ["etl-run", "good-run", "bad-run"]),
        (["--since", "75m"], ["etl-run", "good-run"]),
        (["--since", "4d"], ["etl-run", "good-run", "bad-run", "old-run"]),
        (
            [
                "--since",
                datetime.datetime.fromtimestamp(NOW - 2 * HOUR, datetime.UTC).isoformat(),
                "--pipeline",
                "training",
            ],
            ["good-run", "bad-run"],
        ),
        (["--key", "lr", "--status", "failed"], ["bad-run"]),
    ],
)
def test_runs_filters(
    db: Path, capsys: pytest.CaptureFixture[str], filters: list[str], expected: list[str]
) -> None:
    code, out, err = run(capsys, "--db", str(db), "runs", *filters)
    assert code == 0, err
    assert names(out) == expected


def test_a_limit_says_that_more_runs_match(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, err = run(capsys, "--db", str(db), "runs", "--limit", "2")
    assert names(out) == ["etl-run", "good-run"]
    assert "more runs match" in err
    assert "--limit 4" in err
    _, out, err = run(capsys, "--db", str(db), "runs", "--limit", "4")
    assert len(names(out)) == 4
    assert err == ""


def test_chosen_keys_are_the_columns(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--db", str(db), "runs", "--key", "train::accuracy")
    assert out.splitlines()[0].split()[-1] == "train::accuracy"
    assert "lr" not in out.splitlines()[0].split()


def test_runs_as_one_json_document(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--db", str(db), "runs", "--json", "--limit", "3")
    assert code == 0

    def refuse(constant: str) -> object:
        raise AssertionError(f"not JSON: {constant}")

    data = json.loads(out, parse_constant=refuse)
    assert data["more"] is True
    assert [r["run"] for r in data["runs"]] == ["etl-run", "good-run", "bad-run"]
    good = data["runs"][1]
    assert good["pipeline"] == "training"
    assert good["status"] == "completed"
    started = datetime.datetime.fromisoformat(good["started"])
    assert started.tzinfo is not None
    assert abs(started.timestamp() - (NOW - HOUR)) < 1e-3
    assert good["duration_s"] == pytest.approx(4.0)
    assert good["metrics"]["lr"] == 0.01
    assert good["metrics"]["train::accuracy"] == {"$type": "float", "value": "NaN"}
    assert str(from_json_form(good["metrics"]["train::accuracy"])) == "nan"
    assert data["runs"][0]["finished"] is None
    assert data["runs"][0]["duration_s"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is neither a duration"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_runs_mistakes_are_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "--db", str(db), "runs", *argv)
    assert code == 1
    assert err.startswith(f"metastream: {message}")
    assert len(err.strip().splitlines()) == 1


def test_no_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"

    async def create() -> None:
        async with await Store.open(path):
            pass

    asyncio.run(create())
    assert run(capsys, "--db", str(path), "runs")[1] == "no runs yet\n"
    assert run(capsys, "--db", str(path), "runs", "--status", "failed")[1] == "no runs match\n"
