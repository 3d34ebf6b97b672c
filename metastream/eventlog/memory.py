"""The event log in memory: for unit tests of logic, never for user data.

Also the second implementation of the port, which keeps it honest: the
contract suite runs on it, and the consumer and the projector are tested
with it as a drop-in (``open_event_log``'s registry, ``MemoryLogSource``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from metastream.eventlog.base import AppendResult, EventLog, Incoming, LogRecord


class MemoryEventLog(EventLog):
    """An :class:`EventLog` held in lists; a failed transaction is rolled back."""

    def __init__(self) -> None:
        self._records: list[LogRecord] = []
        self._ids: dict[bytes, int] = {}
        self._in_tx = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._in_tx:
            raise RuntimeError("transactions do not nest")
        mark = len(self._records)
        self._in_tx = True
        try:
            yield
        except BaseException:
            for record in self._records[mark:]:
                del self._ids[record.event_id]
            del self._records[mark:]
            raise
        finally:
            self._in_tx = False

    async def append(self, events: Sequence[Incoming]) -> AppendResult:
        if not self._in_tx:
            raise RuntimeError("append() must be called inside transaction()")
        first = len(self._records) + 1
        new: list[Incoming] = []
        for incoming in events:
            event_id = incoming.event.event_id
            if event_id in self._ids:
                continue
            record = LogRecord(len(self._records) + 1, event_id, incoming.body)
            self._records.append(record)
            self._ids[event_id] = record.position
            new.append(incoming)
        return AppendResult(first, new, len(events) - len(new))

    async def read(self, after: int = 0, limit: int = 1000) -> list[LogRecord]:
        return self._records[max(after, 0) : max(after, 0) + limit]

    async def read_positions(self, positions: Sequence[int]) -> list[LogRecord]:
        n = len(self._records)
        return [self._records[p - 1] for p in sorted(set(positions)) if 1 <= p <= n]

    async def head(self) -> int:
        return len(self._records)

    async def contains(self, event_ids: Sequence[bytes]) -> set[bytes]:
        return {i for i in event_ids if i in self._ids}

    async def close(self) -> None:
        self._records.clear()
        self._ids.clear()

    def source(self) -> MemoryLogSource:
        """The log's synchronous read side (what the projector reads)."""
        return MemoryLogSource(self)


class MemoryLogSource:
    """The :class:`~metastream.eventlog.base.LogSource` over a :class:`MemoryEventLog`."""

    def __init__(self, log: MemoryEventLog) -> None:
        self._records = log._records  # the log's own list: what it appends is seen at once

    def read_bodies(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        start = max(after, 0)
        return [(r.position, r.body) for r in self._records[start : start + limit]]

    def read_at(self, positions: Sequence[int]) -> list[LogRecord]:
        n = len(self._records)
        return [self._records[p - 1] for p in sorted(set(positions)) if 1 <= p <= n]

    def head(self) -> int:
        return len(self._records)
