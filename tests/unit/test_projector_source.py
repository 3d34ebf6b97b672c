"""The projector reading the log through a ``LogSource`` that is not the views' SQLite file.

A ``MemoryEventLog`` is the second implementation of the port: the projector
applying its log into a real SQLite views database must build the very views
(every table, byte for byte) that it builds from the SQLite log in the same
file, including the paths that read earlier events back from the log (a
reference that waits and wakes, a value that arrives after a newer one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metastream.errors import StoreError
from metastream.eventlog import LogRecord, LogSource, MemoryEventLog, SqliteEventLog
from metastream.eventlog.sqlite import open_connection
from metastream.projections import Projector
from metastream.projections.projector import checkpoints, quarantined
from metastream.schemas import (
    ArtifactByName,
    ById,
    Event,
    MetadataLogged,
    RunByName,
    RunStarted,
    StepByName,
    StepStarted,
    encode_event,
    new_id,
    prepare_metadata,
)
from tests.unit.test_properties import histories
from tests.unit.views import dump

RUN = uuid.UUID(int=1)
LOAD = uuid.UUID(int=2)
TRAIN = uuid.UUID(int=3)


def logged(target: Any, event_id: bytes | None = None, **values: Any) -> MetadataLogged:
    return MetadataLogged(
        event_id=event_id or new_id(), target=target, metadata=prepare_metadata(values)
    )


def history() -> list[Event]:
    """Events that make the latest view read the log back, not only apply what it is given."""
    early = [new_id() for _ in range(3)]  # ids older than everything below
    run = ById(kind="pipeline_run", id=RUN)
    return [
        logged(RunByName(name_id_or_prefix="run-a"), a=1, card={"x": 1}),  # waits for the run
        RunStarted(run_id=RUN, name="run-a", pipeline_name="p"),  # ... and wakes it
        StepStarted(step_id=LOAD, run_id=RUN, name="load"),
        logged(run, a=2, card={"y": 2}),
        logged(StepByName(run="run-a", step_name="train"), loss=0.5),  # waits for the step
        logged(ById(kind="step_run", id=LOAD), rows=10),
        logged(run, early[1], a=0, card={"x": 9, "z": 3}),  # older than what is there: merged
        StepStarted(step_id=TRAIN, run_id=RUN, name="train"),  # wakes the loss
        logged(ById(kind="step_run", id=TRAIN), early[2], loss=0.25),  # older: loss stays 0.5
        logged(ArtifactByName(name="data", version="1"), size=1),  # never registered: pending
        logged(run, a=3),
    ]


async def _append(log: SqliteEventLog | MemoryEventLog, bodies: list[bytes], batch: int) -> None:
    for start in range(0, len(bodies), batch):
        result, bad = await log.append_encoded(bodies[start : start + batch])
        assert bad == []


def project(path: Path, source: LogSource | None, chunk: int) -> None:
    """Apply the whole log to the views in ``path``, ``chunk`` events per transaction."""
    conn = open_connection(path, synchronous="NORMAL")
    try:
        projector = Projector(source=source)
        projector.prepare(conn)
        while projector.step(conn, chunk)[0]:
            pass
    finally:
        conn.close()


def views(path: Path) -> tuple[dict[str, Any], dict[str, int], int]:
    conn = open_connection(path)
    try:
        logged_here = conn.execute("SELECT count(*) FROM log_events").fetchone()[0]
        return dump(path), checkpoints(conn), logged_here
    finally:
        conn.close()


def both(tmp: Path, events: list[Event], batch: int, chunk: int) -> tuple[Any, Any]:
    """The views projected from the SQLite log, and from a memory log into another file."""
    bodies = [encode_event(e) for e in events]
    from_sqlite, from_memory = tmp / "sqlite.db", tmp / "memory.db"
    memory = MemoryEventLog()

    async def append_both() -> None:
        log = await SqliteEventLog.open(from_sqlite)
        try:
            await _append(log, bodies, batch)
        finally:
            await log.close()
        await _append(memory, bodies, batch)

    asyncio.run(append_both())
    project(from_sqlite, None, chunk)
    project(from_memory, memory.source(), chunk)
    return views(from_sqlite), views(from_memory)


def test_views_from_a_memory_log_equal_those_from_the_sqlite_log(tmp_path: Path) -> None:
    events = history()
    (sqlite_views, sqlite_checkpoints, in_sqlite), (memory_views, memory_checkpoints, in_file) = (
        both(tmp_path, events, batch=4, chunk=3)
    )
    assert memory_views == sqlite_views
    assert memory_checkpoints == sqlite_checkpoints == {"latest": 11, "registry": 11}
    assert (in_sqlite, in_file) == (len(events), 0)  # the second file's log was never written
    # The paths that read the log back ran: the woken references and the late values.
    assert len(memory_views["pending"]) == 1  # the artifact that never came
    assert memory_views["rejections"] == []
    assert len(memory_views["latest"]) == 4  # run: a, card; load: rows; train: loss


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), batch=st.integers(1, 40), chunk=st.integers(1, 40))
def test_any_history_projects_the_same_from_either_log(
    tmp_path_factory: Any, events: list[Event], batch: int, chunk: int
) -> None:
    tmp = tmp_path_factory.mktemp("views")
    (sqlite_views, sqlite_checkpoints, _), (memory_views, memory_checkpoints, _) = both(
        tmp, events, batch, chunk
    )
    assert memory_views == sqlite_views
    assert memory_checkpoints == sqlite_checkpoints


class BackendDown(Exception):
    """What a storage's driver raises when its server is gone (not an ``OSError``)."""


class FlakySource:
    """A memory log's source whose reads fail while their name is in ``down``."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        self.down: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.down:
            raise BackendDown("server closed the connection unexpectedly")

    def read_bodies(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        self._check("read_bodies")
        return self.source.read_bodies(after, limit)

    def read_at(self, positions: Sequence[int]) -> list[LogRecord]:
        self._check("read_at")
        return self.source.read_at(positions)

    def head(self) -> int:
        self._check("head")
        return self.source.head()


def _flaky() -> tuple[FlakySource, MemoryEventLog]:
    memory = MemoryEventLog()
    bodies = [encode_event(e) for e in history()]
    asyncio.run(_append(memory, bodies, len(bodies)))
    return FlakySource(memory.source()), memory


@pytest.mark.parametrize("failing", ["read_at", "read_bodies", "head"])
def test_a_log_that_cannot_be_read_blames_no_event(tmp_path: Path, failing: str) -> None:
    """A source's failure is the storage's (a StoreError: retried), never an event's: nothing
    is quarantined, and once the log can be read the views are those of a clean run."""
    flaky, memory = _flaky()
    path = tmp_path / "views.db"
    conn = open_connection(path, synchronous="NORMAL")
    try:
        projector = Projector(source=flaky)
        projector.prepare(conn)
        flaky.down = {failing}  # read_at: the latest view reading earlier events back
        with pytest.raises(StoreError, match="BackendDown"):
            projector.step(conn, 100)
        assert checkpoints(conn) == {"latest": 0, "registry": 0}
        assert quarantined(conn) == []
        flaky.down = set()
        while projector.step(conn, 100)[0]:
            pass
    finally:
        conn.close()
    project(tmp_path / "clean.db", memory.source(), 100)
    assert views(path) == views(tmp_path / "clean.db")
