"""The consumer writes to whatever event log the factory opens: a second storage is a drop-in.

A ``MemoryEventLog`` registered as a backend (``register_backend``) stands
in for the next storage (PostgreSQL): the consumer, started against a real
Redis, appends every published event to it exactly once and acks them,
without touching the SQLite file (the projector is off: a memory log lives
in one process). A log in a SQLite file of its own (``second_file_backend``)
is followed by a projector process through the backend's source, and the
views it builds in ``METASTREAM_DB`` hold every event.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from metastream.config import Settings
from metastream.errors import LogElsewhere, StoreError
from metastream.eventlog import (
    EventLog,
    MemoryEventLog,
    open_log_source,
    register_backend,
    unregister_backend,
)
from metastream.query import Reader
from metastream.schemas import decode_stored
from tests.integration import second_file_backend
from tests.streams import consumer_settings, fill, pending, run_events, running_consumer, wait_for

pytestmark = pytest.mark.redis

NO_PROJECTOR = {"METASTREAM_PROJECTOR": "0"}
ROOT = Path(__file__).resolve().parents[2]
PROJECTOR = (
    "import sys, tests.integration.second_file_backend as backend\n"
    "backend.register()\n"
    "from metastream.cli.projector import main\n"
    "sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture
def logs() -> Iterator[list[MemoryEventLog]]:
    """The logs the ``memory`` backend opened, in order."""
    opened: list[MemoryEventLog] = []

    async def open_memory(url: str, settings: Settings) -> EventLog:
        assert url == "memory://consumer-test"
        log = MemoryEventLog()
        opened.append(log)
        return log

    register_backend("memory", open_memory)
    yield opened
    unregister_backend("memory")


@pytest.fixture
def s(settings: Settings, stream: str, redis_url: str) -> Settings:
    return consumer_settings(
        settings,
        stream,
        redis_url,
        max_records=50,
        claim_idle_ms=300,
        event_log="memory://consumer-test",
    )


async def test_the_consumer_appends_to_a_registered_log_exactly_once_and_acks(
    s: Settings, redis_client: redis.Redis, logs: list[MemoryEventLog]
) -> None:
    before = run_events(120, name="before-start")
    fill(redis_client, s.stream, before)
    async with running_consumer(s, environ=NO_PROJECTOR) as consumer:
        (log,) = logs
        assert consumer.log is log
        after = run_events(80, name="after-start")
        fill(redis_client, s.stream, after)
        fill(redis_client, s.stream, before[:30])  # published again: already in the log
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
        await wait_for(lambda: log.source().head() == 200)
        records = await log.read(limit=1000)
        assert consumer.ingestor is not None
        stats = consumer.ingestor.stats
    expected = [decode_stored(b).event_id for b in before + after]
    assert len(expected) == len(set(expected)) == 200
    assert sorted(r.event_id for r in records) == sorted(expected)  # each once, none missing
    assert [r.position for r in records] == list(range(1, 201))
    bodies = {r.event_id: r.body for r in records}
    assert all(bodies[decode_stored(b).event_id] == b for b in before + after)  # exact bytes
    assert (stats.new, stats.duplicates, stats.dead_lettered) == (200, 30, 0)
    assert pending(redis_client, s.stream, s.group) == 0
    assert redis_client.xlen(s.dead_letter_stream) == 0
    assert not s.db.exists()  # the SQLite file was never opened


@pytest.fixture
def log_elsewhere() -> Iterator[None]:
    second_file_backend.register()
    yield
    second_file_backend.unregister()


@pytest.mark.usefixtures("log_elsewhere")
async def test_a_projector_process_follows_a_log_in_another_storage(
    settings: Settings, stream: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    log_file = tmp_path / "elsewhere" / "log.db"
    url = f"{second_file_backend.SCHEME}://{log_file}"
    s = consumer_settings(settings, stream, redis_url, max_records=50, event_log=url)
    events = run_events(150, name="elsewhere")
    fill(redis_client, s.stream, events)
    async with running_consumer(s, environ=NO_PROJECTOR) as consumer:
        assert consumer.log is not None
        await wait_for(lambda: consumer.ingestor is not None and consumer.ingestor.stats.new == 150)
        assert await consumer.log.head() == 150
    assert pending(redis_client, s.stream, s.group) == 0
    assert not s.db.exists()  # the consumer wrote the log elsewhere
    await asyncio.to_thread(_project_from, url, s.db, 150)
    with Reader(s.db) as reader:
        run = reader.run("elsewhere")
        assert run.run_metadata == {"i": 149}  # the latest of the values logged, 1 to 149
        with pytest.raises(LogElsewhere, match=f"kept at {second_file_backend.SCHEME}://"):
            reader.history(run.id.bytes, "i")  # the log is elsewhere: said, not "no values"
    conn = sqlite3.connect(s.db)
    try:  # the views' file holds no log: everything came through the source
        assert conn.execute("SELECT count(*) FROM log_events").fetchone() == (0,)
    finally:
        conn.close()


def _project_from(url: str, db: Path, count: int) -> None:
    """Run a projector process following the log at ``url`` until ``count`` events are applied."""
    projector = subprocess.Popen(
        [sys.executable, "-c", PROJECTOR, "--db", str(db)],
        env={**os.environ, "METASTREAM_EVENT_LOG": url, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while _applied(db) < count:
            assert projector.poll() is None, "the projector exited"
            assert time.monotonic() < deadline, f"only {_applied(db)} of {count} applied"
            time.sleep(0.05)
    finally:
        projector.terminate()
        assert projector.wait(30) == 0


def _applied(db: Path) -> int:
    try:
        with Reader(db) as reader:
            return reader.applied_through()
    except StoreError:  # not created yet
        return 0


async def test_a_backend_without_a_source_cannot_be_followed(
    s: Settings, logs: list[MemoryEventLog]
) -> None:
    with pytest.raises(StoreError, match="the projector no way to read it"):
        open_log_source(s)


async def test_a_scheme_with_no_backend_stops_the_consumer_at_start(
    s: Settings, redis_client: redis.Redis
) -> None:
    with pytest.raises(StoreError, match="no event log backend for memory://"):
        async with running_consumer(s, environ=NO_PROJECTOR):
            pass
