"""The CLI over the views: readable output, and one clear line for every user mistake."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import uuid
from pathlib import Path

import pytest

from metastream.projections import Store
from metastream.schemas import MetadataLogged, RunByName, StorageSize, Uri, prepare_value
from metastream.schemas.jsonform import from_json_form
from metastream.schemas.text import has_control_characters
from tests.events import Pipeline, artifact, by_id, incoming, logged, model
from tests.unit.cli_helpers import run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with one finished run (sync: the CLI runs its own event loop)."""
    path = tmp_path / "m.db"
    asyncio.run(_fill(path))
    return path


async def _fill(path: Path) -> None:
    p = Pipeline("nightly-1", "training")
    data = artifact("dataset", "20230615", run=p)
    mv = model("fraud", "1.0")
    async with await Store.open(path) as store:
        await store.ingest(incoming(p.started(), p.step("train"), data, mv))
        await store.ingest(
            incoming(
                p.on_run(source=Uri("gs://b/d.csv")),
                p.on_step("train", loss=0.25),
                p.on_step("train", loss=0.125, model_metrics={"accuracy": 0.95, "recall": 0.9}),
                logged(
                    by_id("artifact_version", data.artifact_version_id), size=StorageSize(2_500_000)
                ),
                logged(by_id("model_version", mv.model_version_id), stage="prod"),
                logged(RunByName(name_id_or_prefix="missing"), k=1),
                p.step_done("train"),
                p.finished(),
            )
        )


def test_show_run_prints_metadata_with_cards_as_groups(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1")
    assert code == 0
    assert "run:       nightly-1" in out
    assert "status:    completed" in out
    lines = out.splitlines()
    assert any(line.split() == ["source", "gs://b/d.csv"] for line in lines)
    assert any(line.split() == ["train::loss", "0.125"] for line in lines)
    group = lines.index("  [train::model_metrics]")
    assert lines[group + 1].split() == ["accuracy", "0.95"]
    assert lines[group + 2].split() == ["recall", "0.9"]
    assert "steps:" in out
    assert "train" in out.split("steps:")[1]


def test_show_run_without_rollups_and_as_json(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(db), "show", "run", "night", "--no-rollups", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["run"] == "nightly-1"
    assert data["metadata"] == {"source": {"$type": "uri", "value": "gs://b/d.csv"}}
    assert data["started"].endswith("+00:00")  # ISO 8601


def test_show_as_of_a_position(db: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "--db", str(db), "show", "step", "train", "--run", "nightly-1", "--as-of", "6"
    )
    assert code == 0
    assert [line.split() for line in out.splitlines() if "loss" in line] == [["loss", "0.25"]]
    assert "as of:     6" in out


def test_show_step_artifact_and_model(db: Path, capsys) -> None:
    _, out, _ = run(capsys, "--db", str(db), "show", "step", "train", "--run", "nightly-1")
    assert "step:      train" in out
    assert "loss" in out
    _, out, _ = run(capsys, "--db", str(db), "show", "artifact", "dataset")
    assert "version:   20230615" in out
    assert "2.5 MB (2,500,000 bytes)" in out
    _, out, _ = run(capsys, "--db", str(db), "show", "model", "fraud", "--version", "1.0")
    assert "model:     fraud" in out
    assert "prod" in out


def test_history_lists_every_value(db: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "--db", str(db), "history", "step", "train", "loss", "--run", "nightly-1"
    )
    assert code == 0
    values = [line.split()[-1] for line in out.splitlines()[2:]]
    assert values == ["0.25", "0.125"]


def test_rejections_and_waiting_events_are_listed(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(db), "rejections")
    assert code == 0
    assert "waiting" in out
    assert "pipeline run 'missing'" in out


def test_events_as_text_and_json(db: Path, capsys) -> None:
    _, out, _ = run(capsys, "--db", str(db), "events", "--after", "2", "--limit", "2")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "3"
    assert "ArtifactVersionRegistered" in lines[0]
    _, out, _ = run(capsys, "--db", str(db), "events", "--json", "--limit", "1")
    first = json.loads(out)
    assert (first["position"], first["type"], first["name"]) == (1, "RunStarted", "nightly-1")


def test_replay_rebuilds_the_views(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(db), "replay")
    assert code == 0
    assert "rebuilt all projections from 12 events" in out
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--json")
    assert json.loads(out)["metadata"]["train::loss"] == 0.125


def test_replay_refuses_when_the_log_is_elsewhere(
    db: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying the (empty) log of the views' file would leave the views empty."""
    monkeypatch.setenv("METASTREAM_EVENT_LOG", "postgresql://user:secret@host/db")
    code, _, err = run(capsys, "--db", str(db), "replay")
    assert code == 1
    assert "METASTREAM_EVENT_LOG" in err
    assert "secret" not in err
    monkeypatch.delenv("METASTREAM_EVENT_LOG")
    _, out, _ = run(capsys, "--db", str(db), "show", "run", "nightly-1", "--json")
    assert json.loads(out)["metadata"]["train::loss"] == 0.125  # the views were left alone


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "run", "nope"], "no pipeline run with name, id or prefix 'nope'"),
        (["show", "step", "evaluate", "--run", "nightly-1"], "no step 'evaluate'"),
        (["show", "artifact", "dataset", "--version", "9"], "no artifact 'dataset' version '9'"),
        (["show", "step", "not-a-uuid"], "a step is named within a run: pass --run RUN"),
        (["show", "run", "nightly-1", "--as-of", "yesterday"], "neither a log position"),
        (["replay", "nope"], "no projection named nope"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_1(
    db: Path, capsys, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--db", str(db), *argv)
    assert code == 1
    assert err.startswith("metastream: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_missing_database_is_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "--db", str(tmp_path / "none.db"), "show", "run", "x")
    assert code == 1
    assert "no metastream database at" in err
    assert "metastream up" in err


def test_metastream_home_and_metastream_db_choose_the_database(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, err = run(capsys, "rejections")
    assert str(home / "metastream.db") in err
    monkeypatch.setenv("METASTREAM_DB", "/somewhere/else.db")
    _, _, err = run(capsys, "rejections")
    assert "/somewhere/else.db" in err


def test_bench_replay_prints_the_figures_as_json(capsys) -> None:
    code, out, _ = run(capsys, "bench", "replay", "--events", "3000", "--json")
    assert code == 0
    figures = json.loads(out.strip().splitlines()[-1])
    for key in ("append_events_per_s", "rebuild_events_per_s", "peak_rss_mb", "run_query_ms"):
        assert figures[key] > 0
    assert figures["events"] == 3000


# -- terminal-safe output and valid JSON (issue 7, findings 9 and 10) ---------

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\r\x00\x9b"
SHOWN = r"\x1b[2J\x1b]0;pwned\x07\x0d\x00\x9b"


def no_controls(text: str) -> bool:
    return not has_control_characters(text.replace("\n", ""))


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    """A log written before keys were checked: control characters in every user string."""
    path = tmp_path / "hostile.db"
    asyncio.run(_fill_hostile(path))
    return path


def deep_list(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def _fill_hostile(path: Path) -> None:
    p = Pipeline("evil" + ESCAPES, "pipe" + ESCAPES)
    raw = {  # as an older producer accepted them (no key check, no depth limit)
        "key" + ESCAPES: "value" + ESCAPES,
        "card": {"field" + ESCAPES: ("t" + ESCAPES,)},
        "nan": float("nan"),
        "inf": float("-inf"),
        "deep": deep_list(400),
    }
    metadata = {k: prepare_value(v) for k, v in raw.items()}
    async with await Store.open(path) as store:
        await store.ingest(incoming(p.started(), p.step("step" + ESCAPES)))
        await store.ingest(
            incoming(
                MetadataLogged(target=by_id("pipeline_run", p.run_id), metadata=metadata),
                logged(RunByName(name_id_or_prefix="missing" + ESCAPES), k=1),
            )
        )


def strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "run", "evil"],
        ["show", "step", "step" + ESCAPES, "--run", "evil"],
        ["events"],
        ["history", "run", "evil", "key" + ESCAPES],
        ["rejections"],
    ],
)
def test_every_command_shows_control_characters_escaped(
    hostile_db: Path, capsys, argv: list[str]
) -> None:
    code, out, err = run(capsys, "--db", str(hostile_db), *argv)
    assert code == 0, err
    assert r"\x1b[2J\x1b]0;pwned\x07" in out
    assert no_controls(out)
    assert no_controls(err)


def test_show_lays_out_escaped_keys_and_cards(hostile_db: Path, capsys) -> None:
    _, out, _ = run(capsys, "--db", str(hostile_db), "show", "run", "evil")
    lines = out.splitlines()
    assert f"run:       evil{SHOWN}" in lines
    assert any(line.split() == [f"key{SHOWN}", f"value{SHOWN}"] for line in lines)
    card = lines.index("  [card]")
    assert lines[card + 1].split() == [f"field{SHOWN}", f"('t{SHOWN}',)".replace("'", "")]


def test_show_does_not_die_on_a_value_nested_400_deep(hostile_db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(hostile_db), "show", "run", "evil")
    assert code == 0
    (deep,) = [line for line in out.splitlines() if line.split()[:1] == ["deep"]]
    assert "…" in deep
    code, out, _ = run(capsys, "--db", str(hostile_db), "show", "run", "evil", "--json")
    assert code == 0
    data = strict_json(out)
    assert isinstance(data, dict)
    assert from_json_form(data["metadata"]["deep"]) == deep_list(400)


def test_json_output_is_valid_json_in_the_documented_form(hostile_db: Path, capsys) -> None:
    code, out, _ = run(capsys, "--db", str(hostile_db), "show", "run", "evil", "--json")
    assert code == 0
    assert no_controls(out)
    data = strict_json(out)
    assert isinstance(data, dict)
    assert data["run"] == "evil" + ESCAPES  # escaped as JSON, the same text when read
    datetime.datetime.fromisoformat(data["started"])
    metadata = {k: from_json_form(v) for k, v in data["metadata"].items()}
    assert math.isnan(metadata["nan"])
    assert metadata["inf"] == -math.inf
    assert metadata["key" + ESCAPES] == "value" + ESCAPES
    assert metadata["card"] == {"field" + ESCAPES: ("t" + ESCAPES,)}

    code, out, _ = run(capsys, "--db", str(hostile_db), "events", "--json")
    assert code == 0
    assert no_controls(out)
    lines = [strict_json(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == [  # type: ignore[index]
        "RunStarted",
        "StepStarted",
        "MetadataLogged",
        "MetadataLogged",
    ]
    logged_event = lines[2]
    assert isinstance(logged_event, dict)
    assert logged_event["metadata"]["nan"] == {"$type": "float", "value": "NaN"}
    assert datetime.datetime.fromisoformat(logged_event["ts"]).tzinfo is not None
    uuid.UUID(logged_event["event_id"])
