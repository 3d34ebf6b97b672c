"""The consumer writes to whatever event log the factory opens: a second storage is a drop-in.

A ``MemoryEventLog`` registered as a backend (``register_backend``) stands
in for the next storage (PostgreSQL): the consumer, started against a real
Redis, appends every published event to it exactly once and acks them,
without touching the SQLite file. The projector follows only the SQLite log,
so it is off here (``METASTREAM_PROJECTOR=0``), and asking for it with
another log is refused at start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from metastream.config import Settings
from metastream.errors import StoreError
from metastream.eventlog import EventLog, MemoryEventLog, register_backend, unregister_backend
from metastream.schemas import decode_stored
from tests.streams import consumer_settings, fill, pending, run_events, running_consumer, wait_for

pytestmark = pytest.mark.redis

NO_PROJECTOR = {"METASTREAM_PROJECTOR": "0"}


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


async def test_another_log_with_the_projector_on_is_refused_at_start(
    s: Settings, redis_client: redis.Redis, logs: list[MemoryEventLog]
) -> None:
    with pytest.raises(StoreError, match="the projector follows only the SQLite log"):
        async with running_consumer(s, environ={"METASTREAM_PROJECTOR": "1"}):
            pass
    assert not s.db.exists()


async def test_a_scheme_with_no_backend_stops_the_consumer_at_start(
    s: Settings, redis_client: redis.Redis
) -> None:
    with pytest.raises(StoreError, match="no event log backend for memory://"):
        async with running_consumer(s, environ=NO_PROJECTOR):
            pass
