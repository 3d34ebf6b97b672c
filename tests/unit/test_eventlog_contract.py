"""The event log's contract, run against every implementation.

``EventLogContract`` holds the tests; each implementation subclasses it with
a ``log`` fixture and a ``source`` fixture: the log's synchronous read side
(``LogSource``, what the projector reads), over the same storage.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from metastream.eventlog import (
    EventLog,
    LogSource,
    MemoryEventLog,
    SqliteEventLog,
    SqliteLogSource,
    connect,
)
from metastream.eventlog.sqlite import open_connection
from metastream.schemas import RunStarted
from tests.events import incoming


def run_started(name: str = "r") -> RunStarted:
    return RunStarted(run_id=uuid.uuid4(), name=name, pipeline_name="p")


class EventLogContract:
    async def test_an_empty_log_has_head_zero(self, log: EventLog) -> None:
        assert await log.head() == 0
        assert await log.read() == []

    async def test_positions_are_gapless_from_one(self, log: EventLog) -> None:
        events = incoming(*(run_started(f"r{i}") for i in range(5)))
        async with log.transaction():
            result = await log.append(events[:3])
        async with log.transaction():
            second = await log.append(events[3:])
        assert (result.first, second.first) == (1, 4)
        assert [r.position for r in await log.read()] == [1, 2, 3, 4, 5]
        assert await log.head() == 5

    async def test_a_redelivered_event_is_a_no_op_and_the_caller_learns_it(
        self, log: EventLog
    ) -> None:
        a, b, c = incoming(run_started("a"), run_started("b"), run_started("c"))
        async with log.transaction():
            await log.append([a, b])
        async with log.transaction():
            result = await log.append([b, c, a, c])
        assert [n.event.event_id for n in result.new] == [c.event.event_id]
        assert result.first == 3
        assert result.duplicates == 3
        records = await log.read()
        assert [r.event_id for r in records] == [x.event.event_id for x in (a, b, c)]

    async def test_records_keep_the_exact_bytes(self, log: EventLog) -> None:
        events = incoming(run_started("x"))
        async with log.transaction():
            await log.append(events)
        (record,) = await log.read()
        assert record.body == events[0].body
        assert record.event_id == events[0].event.event_id

    async def test_read_after_a_position_with_a_limit(self, log: EventLog) -> None:
        async with log.transaction():
            await log.append(incoming(*(run_started(str(i)) for i in range(10))))
        assert [r.position for r in await log.read(after=3, limit=4)] == [4, 5, 6, 7]
        assert await log.read(after=10) == []

    async def test_read_positions(self, log: EventLog) -> None:
        async with log.transaction():
            await log.append(incoming(*(run_started(str(i)) for i in range(10))))
        found = await log.read_positions([9, 2, 2, 42])
        assert [r.position for r in found] == [2, 9]

    async def test_contains(self, log: EventLog) -> None:
        a, b = incoming(run_started("a"), run_started("b"))
        async with log.transaction():
            await log.append([a])
        assert await log.contains([a.event.event_id, b.event.event_id]) == {a.event.event_id}

    async def test_a_failed_transaction_leaves_nothing(self, log: EventLog) -> None:
        async with log.transaction():
            await log.append(incoming(run_started("kept")))
        events = incoming(run_started("lost"))

        async def fail_inside() -> None:
            async with log.transaction():
                await log.append(events)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_inside()
        assert await log.head() == 1
        assert await log.contains([events[0].event.event_id]) == set()
        async with log.transaction():  # and the id can still be appended later
            result = await log.append(events)
        assert result.first == 2

    async def test_append_encoded_commits_what_decodes_and_names_the_rest(
        self, log: EventLog
    ) -> None:
        good = [e.body for e in incoming(run_started("a"), run_started("b"))]
        result, bad = await log.append_encoded([good[0], b"\xc1", good[1], b"", good[0]])
        assert [i for i, _ in bad] == [1, 3]
        assert all(reason.startswith("cannot decode") for _, reason in bad)
        assert (result.first, len(result.new), result.duplicates) == (1, 2, 1)
        assert [r.body for r in await log.read()] == good  # committed: readable at once

    # -- problem(): the storage is still the one opened -----------------------

    async def test_a_log_just_opened_has_no_problem(self, log: EventLog) -> None:
        assert log.problem() is None
        await log.append_encoded([e.body for e in incoming(run_started("a"))])
        assert log.problem() is None

    # -- the synchronous read side (LogSource) ----------------------------------

    async def test_an_empty_source_has_head_zero(self, log: EventLog, source: LogSource) -> None:
        assert source.head() == 0
        assert source.read_bodies(0, 10) == []
        assert source.read_at([1, 2]) == []

    async def test_the_source_reads_what_the_log_committed(
        self, log: EventLog, source: LogSource
    ) -> None:
        events = incoming(*(run_started(str(i)) for i in range(10)))
        await log.append_encoded([e.body for e in events[:6]])
        assert source.head() == 6
        await log.append_encoded([e.body for e in events[6:]])
        assert source.head() == 10
        assert source.read_bodies(0, 100) == [(r.position, r.body) for r in await log.read()]
        assert source.read_bodies(3, 4) == [(i + 1, events[i].body) for i in range(3, 7)]
        assert source.read_bodies(10, 5) == []

    async def test_the_source_reads_records_at_positions(
        self, log: EventLog, source: LogSource
    ) -> None:
        events = incoming(*(run_started(str(i)) for i in range(10)))
        await log.append_encoded([e.body for e in events])
        found = source.read_at([9, 2, 2, 42, 0])
        assert [r.position for r in found] == [2, 9]
        assert [(r.event_id, r.body) for r in found] == [
            (events[i].event.event_id, events[i].body) for i in (1, 8)
        ]
        assert found == await log.read_positions([9, 2, 2, 42, 0])

    async def test_the_source_never_sees_a_rolled_back_append(
        self, log: EventLog, source: LogSource
    ) -> None:
        await log.append_encoded([e.body for e in incoming(run_started("kept"))])

        async def fail_inside() -> None:
            async with log.transaction():
                await log.append(incoming(run_started("lost")))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_inside()
        assert source.head() == 1
        assert [p for p, _ in source.read_bodies(0, 10)] == [1]


class TestMemoryEventLog(EventLogContract):
    @pytest.fixture
    async def log(self) -> AsyncIterator[MemoryEventLog]:
        log = MemoryEventLog()
        yield log
        await log.close()

    @pytest.fixture
    def source(self, log: MemoryEventLog) -> LogSource:
        return log.source()


class TestSqliteEventLog(EventLogContract):
    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[EventLog]:
        log = await SqliteEventLog.open(tmp_path / "log.db")  # as the consumer opens it
        yield log
        await log.close()

    @pytest.fixture
    def source(self, log: EventLog, tmp_path: Path) -> Iterator[LogSource]:
        """A connection of its own to the same file, as the projector reads it."""
        conn = open_connection(tmp_path / "log.db", synchronous="NORMAL")
        yield SqliteLogSource(conn)
        conn.close()

    async def test_a_deleted_database_is_a_problem(self, log: EventLog, tmp_path: Path) -> None:
        (tmp_path / "log.db").unlink()
        problem = log.problem()
        assert problem is not None
        assert f"the database at {tmp_path / 'log.db'} was deleted while the consumer ran" in (
            problem
        )
        assert "nothing more was acked" in problem

    async def test_a_replaced_database_is_a_problem(self, log: EventLog, tmp_path: Path) -> None:
        other = tmp_path / "other.db"
        other.write_bytes(b"")
        os.replace(other, tmp_path / "log.db")
        problem = log.problem()
        assert problem is not None
        assert "was replaced by another file while the consumer ran" in problem

    async def test_a_log_on_a_database_it_did_not_open_checks_no_file(self, tmp_path: Path) -> None:
        log = SqliteEventLog(await connect(tmp_path / "given.db"))
        try:
            (tmp_path / "given.db").unlink()
            assert log.problem() is None  # no identity recorded: nothing to compare
        finally:
            await log.close()

    async def test_the_log_survives_reopening(self, tmp_path: Path) -> None:
        path = tmp_path / "again.db"
        events = incoming(run_started("a"), run_started("b"))
        log = SqliteEventLog(await connect(path))
        async with log.transaction():
            await log.append(events)
        await log.close()
        log = SqliteEventLog(await connect(path))
        try:
            assert [r.body for r in await log.read()] == [e.body for e in events]
        finally:
            await log.close()

    async def test_a_database_from_a_newer_version_is_refused(self, tmp_path: Path) -> None:
        from metastream.errors import StoreError

        path = tmp_path / "newer.db"
        db = await connect(path)
        await db.execute("UPDATE meta SET value='999' WHERE name='schema_version'")
        await db.close()
        with pytest.raises(StoreError, match="newer metastream"):
            await connect(path)
