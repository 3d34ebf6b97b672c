"""Issue 7, findings 4 and 6: one bad entry no longer takes its batch with it.

Through a real Redis and a real SQLite log. "Poison" here is an entry that
decodes but that the log's append raises on: ``eventlog.sqlite.append`` is
patched to raise on a metadata key named ``poison``, as the dict merge raised
on the entry of finding 4 when the projections were applied in the
consumer's transaction (that entry is now refused at decode: the first
test). The projections are no longer on the consumer's path: an event they
cannot apply is quarantined by the projector (``test_projector.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metastream.config import Settings
from metastream.consumer import iter_dead_letters, retry_dead_letters
from metastream.consumer.entries import entries_of
from metastream.consumer.group import ensure_group
from metastream.consumer.ingest import Ingestor
from metastream.errors import StoreError
from metastream.eventlog import SqliteEventLog
from metastream.eventlog import sqlite as logdb
from metastream.eventlog.base import AppendResult, Incoming
from metastream.projections import Projector
from metastream.schemas import (
    ById,
    MetadataLogged,
    RunStarted,
    decode_stored,
    encode_event,
    prepare_metadata,
)
from metastream.schemas.codec import RawMetadataLogged
from tests.streams import (
    assert_exactly_once,
    consumer_settings,
    fill,
    head,
    log_ids,
    pending,
    running_consumer,
    wait_for,
)

pytestmark = pytest.mark.redis

POISON = "poison"


@pytest.fixture
def s(settings: Settings, stream: str, redis_url: str) -> Settings:
    return consumer_settings(settings, stream, redis_url, max_records=1000, claim_idle_ms=300)


@pytest.fixture
def poisoned() -> Iterator[None]:
    """The log's append raises on any event that logs the key ``poison``."""
    real = logdb.append

    def append(conn: sqlite3.Connection, events: Any) -> AppendResult:
        for event, _ in events:
            if isinstance(event, RawMetadataLogged) and POISON in event.metadata:
                value = msgspec.msgpack.decode(event.metadata[POISON])
                raise TypeError(f"cannot merge {POISON!r} of entry {value}")
        return real(conn, events)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logdb, "append", append)
        yield


def events_with_poison(size: int, poison: set[int]) -> list[bytes]:
    """``size`` events on one run (the first registers it); those at ``poison`` are poison."""
    run_id = uuid.uuid4()
    target = ById(kind="pipeline_run", id=run_id)
    out = [encode_event(RunStarted(run_id=run_id, name=f"r-{run_id}", pipeline_name="p"))]
    for i in range(1, size):
        key = POISON if i in poison else "i"
        out.append(encode_event(MetadataLogged(target=target, metadata={key: i})))
    if 0 in poison:  # the run's own event is poison: make it a poison MetadataLogged instead
        out[0] = encode_event(MetadataLogged(target=target, metadata={POISON: 0}))
    return out


def event_id(body: bytes) -> bytes:
    return decode_stored(body).event_id


async def test_finding_4_a_card_with_an_int_key_is_dead_lettered_alone_and_its_batch_committed(
    s: Settings, redis_client: redis.Redis
) -> None:
    run_id = uuid.uuid4()
    target = ById(kind="pipeline_run", id=run_id)
    bodies = [encode_event(RunStarted(run_id=run_id, name="cards", pipeline_name="p"))]
    bodies += [
        encode_event(MetadataLogged(target=target, metadata=prepare_metadata({"card": {"n": i}})))
        for i in range(498)
    ]
    # Two dict values for one key, one a map with an int key (no producer of ours writes it).
    int_keyed = msgspec.Raw(msgspec.msgpack.encode({1: "one"}))
    bad = msgspec.msgpack.encode(RawMetadataLogged(target=target, metadata={"card": int_keyed}))
    bodies.insert(250, bad)
    ids = fill(redis_client, s.stream, bodies)
    async with running_consumer(s):
        await wait_for(lambda: head(s.db) == 499)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    (dead,) = iter_dead_letters(redis_client, s.dead_letter_stream)
    assert dead.entry_id == ids[250].decode()
    assert dead.reason == "cannot decode: metadata 'card': dict keys must be str, got int 1"
    good = bodies[:250] + bodies[251:]
    assert_exactly_once(s.db, good, redis_client, s)


async def test_entries_the_projections_reject_are_dead_lettered_with_their_exception(
    s: Settings, redis_client: redis.Redis, poisoned: None
) -> None:
    poison = {7, 250, 499}
    bodies = events_with_poison(500, poison)
    ids = fill(redis_client, s.stream, bodies)
    async with running_consumer(s) as consumer:
        await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 3)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    dead = {d.entry_id: d for d in iter_dead_letters(redis_client, s.dead_letter_stream)}
    assert set(dead) == {ids[i].decode() for i in poison}
    for i in poison:
        assert dead[ids[i].decode()].reason == f"TypeError: cannot merge 'poison' of entry {i}"
        assert dead[ids[i].decode()].original == {b"__data__": bodies[i]}
    assert_exactly_once(s.db, [b for i, b in enumerate(bodies) if i not in poison], redis_client, s)
    assert consumer.ingestor is not None
    assert consumer.ingestor.stats.failed_alone == 3
    assert consumer.reclaimer is not None
    assert consumer.reclaimer.claimed == 0  # isolated in the first delivery, nothing retried


async def test_a_dead_lettered_poison_retried_after_the_fix_reaches_the_log(
    s: Settings, redis_client: redis.Redis
) -> None:
    bodies = events_with_poison(20, {5})
    fill(redis_client, s.stream, bodies)
    with pytest.MonkeyPatch.context() as mp:
        real = logdb.append

        def append(conn: sqlite3.Connection, events: list[Incoming]) -> AppendResult:
            if any(isinstance(e, RawMetadataLogged) and POISON in e.metadata for e, _ in events):
                raise KeyError("a bug in the projection")
            return real(conn, events)

        mp.setattr(logdb, "append", append)
        async with running_consumer(s):
            await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 1)
            await wait_for(lambda: head(s.db) == 19)
    (dead,) = iter_dead_letters(redis_client, s.dead_letter_stream)
    assert dead.reason == "KeyError: 'a bug in the projection'"
    retry_dead_letters(redis_client, s.dead_letter_stream)  # the projection is fixed
    async with running_consumer(s):
        await wait_for(lambda: head(s.db) == 20)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert_exactly_once(s.db, bodies, redis_client, s)


async def test_a_lone_failing_entry_is_retried_then_dead_lettered_with_its_reason(
    s: Settings, redis_client: redis.Redis, poisoned: None
) -> None:
    """Nothing else in its batch committed to prove it is the entry's fault: the cap decides."""
    s = s.with_(max_deliveries=2)
    fill(redis_client, s.stream, events_with_poison(1, {0}))
    async with running_consumer(s) as consumer:
        await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 1)
    (dead,) = iter_dead_letters(redis_client, s.dead_letter_stream)
    assert dead.deliveries == 3
    assert dead.reason == "TypeError: cannot merge 'poison' of entry 0 (failed alone on delivery 3)"
    assert consumer.reclaimer is not None
    assert consumer.reclaimer.claimed == 2  # tried on delivery 1 and 2 without being blamed
    assert head(s.db) == 0
    assert pending(redis_client, s.stream, s.group) == 0


async def test_a_database_that_keeps_failing_dead_letters_nothing(
    s: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4's other half: a locked or full database is not the events' fault.

    With ``max_deliveries=1`` the old consumer dead-lettered every entry of
    a batch whose transaction failed twice.
    """
    s = s.with_(max_deliveries=1)
    real_ingest = SqliteEventLog.append_encoded
    failures: list[int] = []

    async def locked_three_times(self: SqliteEventLog, bodies: list[bytes]) -> object:
        if len(failures) < 3:
            failures.append(len(bodies))
            try:
                raise sqlite3.OperationalError("database is locked")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"cannot write to the store: {exc}") from exc
        return await real_ingest(self, bodies)

    monkeypatch.setattr(SqliteEventLog, "append_encoded", locked_three_times)
    bodies = events_with_poison(300, set())
    fill(redis_client, s.stream, bodies)
    async with running_consumer(s):
        await wait_for(lambda: head(s.db) == 300)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    assert failures == [300, 300, 300]  # never split: the environment, not an entry
    assert redis_client.xlen(s.dead_letter_stream) == 0
    assert_exactly_once(s.db, bodies, redis_client, s)


async def test_finding_6_the_same_body_without_event_id_twice_is_stored_zero_times(
    s: Settings, redis_client: redis.Redis
) -> None:
    run_id = uuid.uuid4()
    fields = msgspec.msgpack.decode(
        encode_event(RunStarted(run_id=run_id, name="no-id", pipeline_name="p"))
    )
    del fields["event_id"]
    body = msgspec.msgpack.encode(fields)
    good = events_with_poison(10, set())
    fill(redis_client, s.stream, [good[0], body, *good[1:5], body, *good[5:]])
    async with running_consumer(s):
        await wait_for(lambda: redis_client.xlen(s.dead_letter_stream) == 2)
        await wait_for(lambda: pending(redis_client, s.stream, s.group) == 0)
    reasons = {d.reason for d in iter_dead_letters(redis_client, s.dead_letter_stream)}
    assert len(reasons) == 1
    assert reasons.pop().startswith("cannot decode: the event has no event_id")
    assert_exactly_once(s.db, good, redis_client, s)


# -- the property: random batch sizes, random poison positions --------------


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, set[int]]:
    size = draw(st.integers(2, 150))
    poison = draw(st.sets(st.integers(1, size - 1), max_size=min(size - 1, 6)))
    return size, poison


async def _ingest_once(s: Settings, db: Path, bodies: list[bytes]) -> tuple[list[bytes], Any]:
    """One batch of ``bodies`` through a real Ingestor; the entry ids."""
    client = aredis.Redis.from_url(str(s.redis_url))
    store = await SqliteEventLog.open(db)
    await store.db.run(Projector().prepare)  # as the consumer does: readers find the views
    try:
        await ensure_group(client, s.stream, s.group)
        ids = []
        for body in bodies:
            ids.append(bytes(await client.xadd(s.stream, {"__data__": body})))
        reply = await client.xreadgroup(s.group, "me-1", {s.stream: ">"}, count=len(bodies))
        entries = entries_of(reply[0][1])
        assert [e.id for e in entries] == ids  # one batch, as the subscriber reads it
        ingestor = Ingestor(store, client, s, "me-1", environ={})
        await ingestor.process(entries)
        return ids, ingestor.stats
    finally:
        await store.close()
        await client.aclose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=batches())
def test_property_exactly_the_poison_is_dead_lettered_and_every_other_event_logged_once(
    batch: tuple[int, set[int]],
    settings: Settings,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    poisoned: None,
) -> None:
    size, poison = batch
    name = uuid.uuid4().hex
    s = consumer_settings(settings, f"test:{name}", redis_url)
    bodies = events_with_poison(size, poison)
    db = tmp_path / f"{name}.db"
    ids, stats = asyncio.run(_ingest_once(s, db, bodies))
    dead = {d.entry_id for d in iter_dead_letters(redis_client, s.dead_letter_stream)}
    assert dead == {ids[i].decode() for i in poison}
    logged = log_ids(db)
    assert len(logged) == len(set(logged))
    assert set(logged) == {event_id(b) for i, b in enumerate(bodies) if i not in poison}
    assert pending(redis_client, s.stream, s.group) == 0
    assert stats.failed_alone == len(poison)
    redis_client.delete(s.stream, s.dead_letter_stream)
