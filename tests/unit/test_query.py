"""Reading the views: runs with rollups, steps, artifacts, models, history, "as of"."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from metastream.errors import AmbiguousReference, ReferenceNotFound, StoreError
from metastream.projections import Store
from metastream.query import Reader
from metastream.query.as_of import run_as_of
from metastream.schemas import DType, StorageSize, Uri
from tests.events import Pipeline, artifact, by_id, incoming, logged, model


@pytest.fixture
async def world(tmp_path: Path) -> tuple[Path, Pipeline, dict[str, object]]:
    db = tmp_path / "m.db"
    p = Pipeline("nightly-1", "training")
    data_v1, data_v2 = artifact("dataset", run=p), artifact("dataset", run=p)
    mv = model("fraud", "1.0")
    async with await Store.open(db) as store:
        await store.ingest(incoming(p.started(), p.step("load"), p.step("train"), data_v1, mv))
        await store.ingest(
            incoming(
                p.on_run(git={"commit": "abc"}, source=Uri("gs://b/d.csv")),
                p.on_step("load", rows=100, columns={"age": DType("int")}),
                p.on_step("train", loss=0.9),
                p.on_step("train", loss=0.5, metrics={"accuracy": 0.8}),
                p.on_step("train", loss=0.1, metrics={"precision": 0.7}),
                logged(by_id("artifact_version", data_v1.artifact_version_id), size=StorageSize(5)),
                logged(by_id("model_version", mv.model_version_id), stage="prod"),
                p.step_done("load"),
            )
        )
        await store.ingest(
            incoming(data_v2, p.step_done("train", "failed", "OOM"), p.finished("failed"))
        )
    return db, p, {"data_v1": data_v1, "data_v2": data_v2, "model": mv}


async def test_a_run_has_its_own_keys_and_every_steps_keys_as_rollups(world: tuple) -> None:
    db, p, _ = world
    with Reader(db) as reader:
        run = reader.run("nightly-1")
    assert run.id == p.run_id
    assert (run.name, run.pipeline_name, run.status) == ("nightly-1", "training", "failed")
    assert run.run_metadata == {
        "git": {"commit": "abc"},
        "source": Uri("gs://b/d.csv"),
        "load::rows": 100,
        "load::columns": {"age": DType("int")},
        "train::loss": 0.1,
        "train::metrics": {"accuracy": 0.8, "precision": 0.7},
    }
    assert type(run.run_metadata["source"]) is Uri
    assert list(run.steps) == ["load", "train"]
    train = run.steps["train"]
    assert (train.status, train.error) == ("failed", "OOM")
    assert train.run_metadata == {"loss": 0.1, "metrics": {"accuracy": 0.8, "precision": 0.7}}
    assert isinstance(run.created, datetime.datetime)
    assert run.created.tzinfo is not None


async def test_rollups_can_be_left_out(world: tuple) -> None:
    db, _, _ = world
    with Reader(db) as reader:
        assert set(reader.run("nightly-1", rollups=False).run_metadata) == {"git", "source"}


async def test_an_unknown_step_names_the_run_and_its_steps(world: tuple) -> None:
    db, _, _ = world
    with Reader(db) as reader:
        run = reader.run("nightly-1")
        with pytest.raises(KeyError, match=r"no step 'evaluate' \(its steps: load, train\)"):
            run.steps["evaluate"]
        with pytest.raises(KeyError, match="no step 'evaluate' in pipeline run 'nightly-1'"):
            reader.step("evaluate", run="nightly-1")


async def test_runs_are_found_by_name_id_and_prefixes(world: tuple) -> None:
    db, p, _ = world
    with Reader(db) as reader:
        for ref in ("nightly-1", "night", str(p.run_id), p.run_id.hex[:10], str(p.run_id)[:13]):
            assert reader.run(ref).id == p.run_id, ref
        with pytest.raises(ReferenceNotFound, match="no pipeline run with name, id or prefix 'x'"):
            reader.run("x")


async def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path) -> None:
    a, b = Pipeline("exp-1"), Pipeline("exp-2")
    async with await Store.open(tmp_path / "m.db") as store:
        await store.ingest(incoming(a.started(), b.started()))
    with Reader(tmp_path / "m.db") as reader, pytest.raises(AmbiguousReference) as caught:
        reader.run("exp")
    assert len(caught.value.candidates) == 2
    assert "exp-1" in str(caught.value)
    assert "exp-2" in str(caught.value)


async def test_artifacts_latest_version_by_default(world: tuple) -> None:
    db, _, made = world
    with Reader(db) as reader:
        assert reader.artifact_version("dataset").version == "2"
        v1 = reader.artifact_version("dataset", "1")
        assert v1.id == made["data_v1"].artifact_version_id  # type: ignore[attr-defined]
        assert v1.run_metadata == {"size": StorageSize(5)}
        assert reader.artifact_version(str(v1.id)).version == "1"
        with pytest.raises(ReferenceNotFound, match="no artifact 'dataset' version '9'"):
            reader.artifact_version("dataset", "9")
        with pytest.raises(ReferenceNotFound, match="no artifact version named 'nope'"):
            reader.artifact_version("nope")


async def test_the_artifact_versions_a_run_produced(world: tuple) -> None:
    db, p, made = world
    with Reader(db) as reader:
        found = reader.run_artifacts(p.run_id.bytes)
    assert [a.id for a in found] == [
        made["data_v1"].artifact_version_id,  # type: ignore[attr-defined]
        made["data_v2"].artifact_version_id,  # type: ignore[attr-defined]
    ]
    assert found[0].run_metadata == {"size": StorageSize(5)}


async def test_model_versions(world: tuple) -> None:
    db, _, _ = world
    with Reader(db) as reader:
        mv = reader.model_version("fraud", "1.0")
        assert (mv.name, mv.version, mv.run_metadata) == ("fraud", "1.0", {"stage": "prod"})


async def test_runs_listed_newest_first_and_by_pipeline(world: tuple, tmp_path: Path) -> None:
    db, _, _ = world
    other = Pipeline("other", "inference")
    async with await Store.open(db) as store:
        await store.ingest(incoming(other.started()))
    with Reader(db) as reader:
        assert [r.name for r in reader.list_runs()] == ["other", "nightly-1"]
        assert [r.name for r in reader.list_runs("training")] == ["nightly-1"]
        assert reader.list_runs("nothing") == []


async def test_the_history_of_a_key(world: tuple) -> None:
    db, p, _ = world
    with Reader(db) as reader:
        entries = reader.history(p.step_ids["train"].bytes, "loss")
        assert [e.value for e in entries] == [0.9, 0.5, 0.1]
        assert [e.position for e in entries] == sorted(e.position for e in entries)
        assert reader.history(p.step_ids["train"].bytes, "nothing") == []


async def test_state_as_of_a_position(world: tuple) -> None:
    db, p, _ = world
    train = p.step_ids["train"].bytes
    with Reader(db) as reader:
        (first, second, third) = reader.history(train, "loss")
        assert reader.as_of(train, position=first.position) == {"loss": 0.9}
        assert reader.as_of(train, position=second.position) == {
            "loss": 0.5,
            "metrics": {"accuracy": 0.8},
        }
        assert (
            reader.as_of(train, position=third.position)
            == reader.step(p.step_ids["train"]).run_metadata
        )
        assert reader.as_of(train, position=0) == {}
        as_of_run = run_as_of(reader, p.run_id.bytes, position=second.position).run_metadata
        assert as_of_run["train::loss"] == 0.5
        assert "load::rows" in as_of_run


async def test_state_as_of_a_time(world: tuple) -> None:
    db, p, _ = world
    train = p.step_ids["train"].bytes
    with Reader(db) as reader:
        entries = reader.history(train, "loss")
        moment = entries[1].logged_at.timestamp()
        assert reader.as_of(train, time=moment)["loss"] == 0.5
        assert reader.as_of(train, time=0) == {}


async def test_set_aside_events_are_listed(tmp_path: Path) -> None:
    a, b = Pipeline("exp-1"), Pipeline("exp-2")
    from metastream.schemas import RunByName

    async with await Store.open(tmp_path / "m.db") as store:
        await store.ingest(
            incoming(
                a.started(),
                b.started(),
                logged(RunByName(name_id_or_prefix="exp"), k=1),
                logged(RunByName(name_id_or_prefix="later"), k=2),
            )
        )
    with Reader(tmp_path / "m.db") as reader:
        rejected, waiting = reader.set_aside()
    assert (rejected.rejected, rejected.target) == (True, "pipeline run 'exp'")
    assert len(rejected.candidates) == 2
    assert (waiting.rejected, waiting.target) == (False, "pipeline run 'later'")


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no metastream database at .*metastream up"):
        Reader(tmp_path / "none.db")
