"""The projections: registry, latest values with card merging, waiting and rejected references."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from metastream.errors import StoreError
from metastream.projections import LatestProjection, RegistryProjection, Store
from metastream.schemas import (
    ArtifactByName,
    ModelByName,
    ModelVersionRegistered,
    RunByName,
    StepByName,
    StorageSize,
    Uri,
    model_version_id_for,
    new_id,
)
from tests.events import Pipeline, artifact, by_id, incoming, logged, model
from tests.unit.views import dump, latest


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "metastream.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    store = await Store.open(db)
    yield store
    await store.close()


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_runs_and_steps_are_registered_with_status(store: Store, db: Path) -> None:
    p = Pipeline("run-1", "training")
    await store.ingest(incoming(p.started(), p.step("load"), p.step("train")))
    await store.ingest(incoming(p.step_done("load"), p.step_done("train", "failed", "boom")))
    await store.ingest(incoming(p.finished("failed")))
    found = rows(
        db, "SELECT kind, name, pipeline_name, status, error FROM entities ORDER BY position"
    )
    assert found == [
        ("pipeline_run", "run-1", "training", "failed", None),
        ("step_run", "load", None, "completed", None),
        ("step_run", "train", None, "failed", "boom"),
    ]


async def test_a_finish_that_arrives_before_its_start_keeps_the_final_status(
    store: Store, db: Path
) -> None:
    p = Pipeline()
    start, finish = p.started(), p.finished("completed")
    await store.ingest(incoming(finish))
    await store.ingest(incoming(start))
    assert rows(db, "SELECT name, status FROM entities") == [("run-1", "completed")]


async def test_versions_left_to_the_registry_are_numbered_per_name(store: Store, db: Path) -> None:
    await store.ingest(incoming(artifact("data"), artifact("data"), artifact("other")))
    await store.ingest(incoming(artifact("data", "custom"), artifact("data")))
    assert rows(db, "SELECT name, version FROM entities ORDER BY position") == [
        ("data", "1"),
        ("data", "2"),
        ("other", "1"),
        ("data", "custom"),
        ("data", "3"),
    ]


async def test_a_named_model_version_registered_twice_is_one_entity(store: Store, db: Path) -> None:
    def registered() -> ModelVersionRegistered:
        return ModelVersionRegistered(
            model_version_id=model_version_id_for("fraud", "1.0"), name="fraud", version="1.0"
        )

    await store.ingest(incoming(registered()))
    await store.ingest(incoming(registered()))
    assert rows(db, "SELECT name, version FROM entities") == [("fraud", "1.0")]


async def test_the_latest_value_is_the_one_with_the_greatest_event_id(
    store: Store, db: Path
) -> None:
    p = Pipeline()
    first, second, third = (p.on_run(loss=v) for v in (0.9, 0.5, 0.1))
    await store.ingest(incoming(p.started(), first, third))
    await store.ingest(incoming(second))  # arrives late: older than what is there
    assert latest(db, p.run_id.bytes) == {"loss": 0.1}


async def test_dicts_are_merged_in_event_id_order(store: Store, db: Path) -> None:
    p = Pipeline()
    a = p.on_run(card={"accuracy": 0.9, "note": "first"})
    b = p.on_run(card={"precision": 0.8})
    c = p.on_run(card={"note": "third", "recall": 0.7})
    await store.ingest(incoming(p.started(), a))
    await store.ingest(incoming(c))
    await store.ingest(incoming(b))  # late: merged in its place, not on top
    assert latest(db, p.run_id.bytes) == {
        "card": {"accuracy": 0.9, "note": "third", "precision": 0.8, "recall": 0.7}
    }


async def test_no_merging_once_a_key_was_ever_not_a_dict(store: Store, db: Path) -> None:
    p = Pipeline()
    a = p.on_run(x={"a": 1})
    b = p.on_run(x=5)
    c = p.on_run(x={"c": 3})
    await store.ingest(incoming(p.started(), a, b, c))
    assert latest(db, p.run_id.bytes) == {"x": {"c": 3}}


async def test_a_late_plain_value_among_merged_dicts_undoes_the_merge(
    store: Store, db: Path
) -> None:
    p = Pipeline()
    a = p.on_run(x="plain")
    b = p.on_run(x={"b": 2})
    c = p.on_run(x={"c": 3})
    await store.ingest(incoming(p.started(), b, c))
    assert latest(db, p.run_id.bytes) == {"x": {"b": 2, "c": 3}}
    await store.ingest(incoming(a))  # older than both, and not a dict
    assert latest(db, p.run_id.bytes) == {"x": {"c": 3}}


async def test_metadata_that_arrives_before_its_step_waits_then_applies(
    store: Store, db: Path
) -> None:
    p = Pipeline()
    run, step = p.started(), p.step("train")
    early = p.on_step("train", loss=0.5)
    by_name = logged(StepByName(run="run-1", step_name="train"), accuracy=0.9)
    await store.ingest(incoming(early, by_name))
    assert [r[0] for r in rows(db, "SELECT target FROM pending ORDER BY position")] == [
        f"step run {p.step_ids['train']}",
        "step 'train' of pipeline run 'run-1'",
    ]
    await store.ingest(incoming(run))
    assert len(rows(db, "SELECT * FROM pending")) == 2  # the step is still unknown
    await store.ingest(incoming(step))
    assert rows(db, "SELECT * FROM pending") == []
    assert latest(db, p.step_ids["train"].bytes) == {"loss": 0.5, "accuracy": 0.9}


async def test_references_by_name_resolve(store: Store, db: Path) -> None:
    p = Pipeline("nightly-2026-11-23")
    data = artifact("dataset", "20230615")
    mv = model("fraud", "1.0")
    await store.ingest(incoming(p.started(), p.step("train"), data, mv))
    await store.ingest(
        incoming(
            logged(RunByName(name_id_or_prefix="nightly-2026-11-23"), exact=1),
            logged(RunByName(name_id_or_prefix="nightly"), by_name_prefix=2),
            logged(RunByName(name_id_or_prefix=str(p.run_id)), by_uuid=3),
            logged(RunByName(name_id_or_prefix=p.run_id.hex[:8]), by_id_prefix=4),
            logged(StepByName(run=str(p.run_id), step_name="train"), step=5),
            logged(ArtifactByName(name="dataset", version="20230615"), size=StorageSize(10)),
            logged(ModelByName(name="fraud", version="1.0"), endpoint=Uri("https://x")),
        )
    )
    assert latest(db, p.run_id.bytes) == {
        "exact": 1,
        "by_name_prefix": 2,
        "by_uuid": 3,
        "by_id_prefix": 4,
    }
    assert latest(db, p.step_ids["train"].bytes) == {"step": 5}
    assert latest(db, data.artifact_version_id.bytes) == {"size": StorageSize(10)}
    assert latest(db, mv.model_version_id.bytes) == {"endpoint": Uri("https://x")}


async def test_an_exact_name_wins_over_a_prefix(store: Store, db: Path) -> None:
    short, long_ = Pipeline("exp"), Pipeline("exp-2")
    await store.ingest(incoming(short.started(), long_.started()))
    await store.ingest(incoming(logged(RunByName(name_id_or_prefix="exp"), k=1)))
    assert latest(db, short.run_id.bytes) == {"k": 1}


async def test_an_ambiguous_prefix_is_rejected_with_its_candidates(store: Store, db: Path) -> None:
    a, b = Pipeline("exp-1"), Pipeline("exp-2")
    await store.ingest(incoming(a.started(), b.started()))
    await store.ingest(incoming(logged(RunByName(name_id_or_prefix="exp"), k=1)))
    ((target, reason, candidates),) = rows(db, "SELECT target, reason, candidates FROM rejections")
    assert target == "pipeline run 'exp'"
    assert "prefix 'exp' matches 2 pipeline runs" in reason
    assert "exp-1" in candidates
    assert "exp-2" in candidates
    assert rows(db, "SELECT * FROM latest") == []


async def test_an_id_of_another_kind_of_entity_is_rejected(store: Store, db: Path) -> None:
    p = Pipeline()
    await store.ingest(incoming(p.started(), logged(by_id("step_run", p.run_id), k=1)))
    ((reason,),) = rows(db, "SELECT reason FROM rejections")
    assert reason == f"id {p.run_id} is a pipeline run, not a step run"


async def test_a_reference_is_resolved_only_against_entities_logged_before_it(
    store: Store, db: Path
) -> None:
    """A prefix means what existed when it was logged, whatever arrives later."""
    a, b = Pipeline("exp-1"), Pipeline("exp-2")
    await store.ingest(incoming(a.started(), logged(RunByName(name_id_or_prefix="exp"), k=1)))
    await store.ingest(incoming(b.started()))
    assert latest(db, a.run_id.bytes) == {"k": 1}
    assert rows(db, "SELECT * FROM rejections") == []


async def test_the_component_that_logged_a_value_is_kept(store: Store, db: Path) -> None:
    p = Pipeline()
    await store.ingest(
        incoming(p.started(), logged(by_id("pipeline_run", p.run_id), "git", commit="abc"))
    )
    assert rows(db, "SELECT key, component FROM latest") == [("commit", "git")]


async def test_a_redelivered_batch_changes_nothing(store: Store, db: Path) -> None:
    p = Pipeline()
    batch = incoming(p.started(), p.on_run(a=1), p.on_run(card={"x": 1}))
    await store.ingest(batch)
    before = dump(db)
    result = await store.ingest(batch)
    assert (len(result.new), result.duplicates) == (0, 3)
    assert dump(db) == before


async def test_checkpoints_move_with_the_rows(store: Store) -> None:
    p = Pipeline()
    await store.ingest(incoming(p.started(), p.on_run(a=1)))
    assert await store.checkpoints() == {"registry": 2, "latest": 2}


class Exploding(LatestProjection):
    def apply(self, conn: sqlite3.Connection, records: Any) -> None:
        super().apply(conn, records)
        raise sqlite3.OperationalError("disk I/O error")


async def test_an_environmental_failure_of_a_projection_rolls_back_the_append(db: Path) -> None:
    """The disk, not an event: nothing is quarantined, nothing committed (retried later)."""
    async with await Store.open(db, projections=[RegistryProjection(), Exploding()]) as store:
        p = Pipeline()
        with pytest.raises(StoreError, match="disk I/O error"):
            await store.ingest(incoming(p.started(), p.on_run(a=1)))
        assert rows(db, "SELECT * FROM quarantine") == []
        assert await store.log.head() == 0
        assert rows(db, "SELECT * FROM entities") == []
        assert await store.checkpoints() == {"registry": 0, "latest": 0}


async def test_a_projection_added_later_catches_up_from_the_log(tmp_path: Path) -> None:
    events = _history_with_everything()
    later, full = tmp_path / "later.db", tmp_path / "full.db"
    async with await Store.open(later, projections=[RegistryProjection()]) as store:
        for batch in events:
            await store.ingest(incoming(*batch))
    async with await Store.open(later) as store:  # now with the latest view: it catches up
        assert await store.checkpoints() == {"registry": 10, "latest": 10}
    async with await Store.open(full) as store:
        for batch in events:
            await store.ingest(incoming(*batch))
    assert dump(later) == dump(full)


async def test_a_new_version_of_a_projection_rebuilds_it_at_open(db: Path, caplog: Any) -> None:
    async with await Store.open(db) as store:
        for batch in _history_with_everything():
            await store.ingest(incoming(*batch))
    before = dump(db)

    class LatestV2(LatestProjection):
        version = LatestProjection.version + 1

    async with await Store.open(db, projections=[RegistryProjection(), LatestV2()]):
        pass
    assert "rebuilding it from the log" in caplog.text
    assert dump(db) == before


async def test_replay_rebuilds_identical_views(store: Store, db: Path) -> None:
    for batch in _history_with_everything():
        await store.ingest(incoming(*batch))
    before = dump(db)
    progress: list[tuple[int, int]] = []
    assert await store.replay(progress=lambda d, t: progress.append((d, t))) == 10
    assert dump(db) == before
    assert progress[-1] == (10, 10)
    assert await store.replay(["latest"]) == 10
    assert dump(db) == before


async def test_replay_of_an_unknown_projection_says_which_exist(store: Store) -> None:
    with pytest.raises(ValueError, match="no projection named nope; known: registry, latest"):
        await store.replay(["nope"])


async def test_an_unreadable_event_in_the_log_stops_a_rebuild_clearly(
    store: Store, db: Path
) -> None:
    await store.ingest(incoming(Pipeline().started()))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO log_events(event_id, body) VALUES (?, ?)", (new_id(), b"\xc1"))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="cannot read"):
        await store.replay()


def _history_with_everything() -> list[list[Any]]:
    """10 events in 4 batches: out-of-order, waiting, rejected, cards, names."""
    p, q = Pipeline("exp-1"), Pipeline("exp-2")
    early = logged(StepByName(run="exp-1", step_name="train"), early=True)
    return [
        [early, p.started(), q.started()],
        [p.step("train"), p.on_step("train", loss=0.1, card={"a": 1})],
        [p.on_step("train", card={"b": 2}), logged(RunByName(name_id_or_prefix="exp"), k=1)],
        [p.on_run(uri=Uri("s3://x")), p.step_done("train"), p.finished()],
    ]


async def test_entity_ids_in_fixtures_are_unique() -> None:
    assert len({Pipeline().run_id for _ in range(100)}) == 100
    assert uuid.UUID(bytes=new_id()).version == 7


async def test_what_the_consumer_appends_the_projector_applies(store: Store, db: Path) -> None:
    p = Pipeline()
    good = [i.body for i in incoming(p.started(), p.on_run(a=1))]
    result, bad = await store.log.append_encoded([good[0], b"\xc1", good[1], b""])
    assert [i for i, _ in bad] == [1, 3]
    assert latest(db, p.run_id.bytes) == {}  # appended only: not in the views yet
    assert await store.catch_up() == 2
    assert latest(db, p.run_id.bytes) == {"a": 1}
