"""Properties of the views that must hold for every history of events.

* Incremental processing, in any batching, and a replay from the log give
  identical views (every table, byte for byte).
* The latest-value view depends only on the set of events, not on the
  order in which they arrive (references by id or exact name; a prefix
  deliberately means "what existed when it was logged").
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metastream.projections import Store
from metastream.schemas import (
    ArtifactByName,
    ArtifactVersionRegistered,
    ById,
    Event,
    MetadataLogged,
    RunByName,
    RunStarted,
    StepByName,
    StepStarted,
    StorageSize,
    Uri,
    new_id,
    prepare_metadata,
)
from tests.events import incoming
from tests.unit.views import dump

RUNS = ["run-a", "run-b"]
STEPS = ["load", "train"]
RUN_IDS = {name: uuid.UUID(int=i + 1) for i, name in enumerate(RUNS)}
STEP_IDS = {
    (r, s): uuid.UUID(int=100 + 10 * i + j) for i, r in enumerate(RUNS) for j, s in enumerate(STEPS)
}
ARTIFACT_ID = uuid.UUID(int=999)


def registrations() -> list[Event]:
    out: list[Event] = []
    for run in RUNS:
        out.append(RunStarted(run_id=RUN_IDS[run], name=run, pipeline_name="p"))
        out.extend(
            StepStarted(step_id=STEP_IDS[(run, s)], run_id=RUN_IDS[run], name=s) for s in STEPS
        )
    out.append(ArtifactVersionRegistered(artifact_version_id=ARTIFACT_ID, name="data", version="1"))
    return out


targets = st.one_of(
    st.sampled_from(RUNS).map(lambda r: ById(kind="pipeline_run", id=RUN_IDS[r])),
    st.sampled_from(RUNS).map(lambda r: RunByName(name_id_or_prefix=r)),
    st.sampled_from(RUNS).map(lambda r: RunByName(name_id_or_prefix=str(RUN_IDS[r]))),
    st.tuples(st.sampled_from(RUNS), st.sampled_from(STEPS)).map(
        lambda rs: ById(kind="step_run", id=STEP_IDS[rs])
    ),
    st.tuples(st.sampled_from(RUNS), st.sampled_from(STEPS)).map(
        lambda rs: StepByName(run=rs[0], step_name=rs[1])
    ),
    st.just(ArtifactByName(name="data", version="1")),
    st.just(ById(kind="artifact_version", id=ARTIFACT_ID)),
)
values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.builds(Uri, st.text(max_size=3)),
    st.builds(StorageSize, st.integers(0, 100)),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(0, 9), max_size=3),
)
metadata = st.dictionaries(st.sampled_from(["a", "b", "card"]), values, min_size=1, max_size=3)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Registrations plus metadata events, each with a distinct time-ordered id."""
    logged = draw(st.lists(st.tuples(targets, metadata), min_size=1, max_size=25))
    events: list[Event] = registrations()
    for target, values_ in logged:
        events.append(
            MetadataLogged(event_id=new_id(), target=target, metadata=prepare_metadata(values_))
        )
    return events


async def ingest(path: Path, events: list[Event], cuts: list[int]) -> None:
    async with await Store.open(path) as store:
        start = 0
        for cut in [*sorted(set(cuts)), len(events)]:
            if start < cut <= len(events):
                await store.ingest(incoming(*events[start:cut]))
                start = cut


async def replay(path: Path) -> None:
    async with await Store.open(path) as store:
        await store.replay()


def build(events: list[Event], cuts: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The views after ingesting, and after a replay of the same log."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.db"
        asyncio.run(ingest(path, events, cuts))
        incremental = dump(path)
        asyncio.run(replay(path))
        return incremental, dump(path)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), events=histories())
def test_incremental_processing_and_replay_give_identical_views(
    data: st.DataObject, events: list[Event]
) -> None:
    shuffled = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(1, len(events)), max_size=5))
    incremental, replayed = build(shuffled, cuts)
    assert replayed == incremental


@SETTINGS
@given(data=st.data(), events=histories())
def test_the_latest_view_does_not_depend_on_arrival_order(
    data: st.DataObject, events: list[Event]
) -> None:
    shuffled = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(1, len(events)), max_size=5))
    in_order, _ = build(events, [])
    any_order, _ = build(shuffled, cuts)
    assert any_order["latest"] == in_order["latest"]
    assert any_order["pending"] == []
    assert any_order["rejections"] == []
