"""The event log's port: what every storage implementation provides.

The log is append-only and is the system of record. Each appended event gets
a gapless global *position* (1, 2, 3, ...). Appending an event whose
``event_id`` is already in the log is a no-op, so a redelivered event never
counts twice; ``append`` tells the caller which events were new.

The consumer writes only through :meth:`EventLog.append_encoded` (decode,
append, commit: its whole write, acked once it returns) and asks
:meth:`EventLog.problem` before each transaction and before acking. The
projector, which is synchronous (a process of its own, no event loop),
reads the log through a :class:`LogSource`. A new storage (PostgreSQL next)
implements both, passes ``tests/unit/test_eventlog_contract.py``, and is
registered by URL scheme with :func:`metastream.eventlog.register_backend`
(``eventlog/open.py``). The readers (``metastream.query``, the API) still
read the SQLite file directly.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple, Protocol, TypeVar

from metastream.errors import StoreError
from metastream.eventlog.failures import describe, is_environmental
from metastream.schemas import StoredEvent
from metastream.schemas.codec import decode_incoming

Undecodable = tuple[int, str]
"""``(index in the batch, reason)`` of a body that could not be decoded."""


class Incoming(NamedTuple):
    """An event to append: decoded (to read its id) and its exact bytes."""

    event: StoredEvent
    body: bytes


_incoming = tuple.__new__  # Incoming without NamedTuple's Python-level __new__


def decode_bodies(bodies: Sequence[bytes]) -> tuple[list[Incoming], list[Undecodable]]:
    """Decode ``bodies`` with ``decode_incoming``: those that decode, and why the others did not."""
    good: list[Incoming] = []
    bad: list[Undecodable] = []
    for i, body in enumerate(bodies):
        try:
            good.append(_incoming(Incoming, (decode_incoming(body), body)))
        except Exception as exc:
            bad.append((i, f"cannot decode: {exc}"))
    return good, bad


class LogRecord(NamedTuple):
    """An event in the log."""

    position: int
    event_id: bytes
    body: bytes


class AppendResult(NamedTuple):
    first: int
    """The position of the first new event; the others follow it without gaps."""
    new: list[Incoming]
    """The events that were not yet in the log, in position order."""
    duplicates: int
    """How many events were already in the log (or twice in the batch)."""

    def records(self) -> list[tuple[int, StoredEvent]]:
        """``(position, event)`` for every new event: what projections apply."""
        return list(
            zip(
                range(self.first, self.first + len(self.new)),
                [n.event for n in self.new],
                strict=True,
            )
        )


class LogSource(Protocol):
    """The log's synchronous read side: what the projector reads.

    Implementations: ``SqliteLogSource`` (over a ``sqlite3`` connection: the
    projector's own, on the file it writes the views to) and
    ``MemoryLogSource`` (over a :class:`~metastream.eventlog.MemoryEventLog`).
    Errors are the storage's own: the projector reads through
    :func:`store_errors`, so that a failure to read the log is retried and
    never taken for an event's fault.
    """

    def read_bodies(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """``(position, body)`` of up to ``limit`` events with position > ``after``, in order."""
        ...

    def read_at(self, positions: Sequence[int]) -> list[LogRecord]:
        """The records at ``positions`` (missing ones are left out), in position order."""
        ...

    def head(self) -> int:
        """The position of the last event, 0 for an empty log."""
        ...


T = TypeVar("T")


def _reading(action: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except Exception as exc:
        if is_environmental(exc):
            raise
        raise StoreError(f"cannot read the event log ({action}): {describe(exc)}") from exc


class StoreErrorsSource:
    """A :class:`LogSource` whose failures are all the storage's (see :func:`store_errors`)."""

    __slots__ = ("source",)

    def __init__(self, source: LogSource) -> None:
        self.source = source

    def read_bodies(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return _reading("read_bodies", self.source.read_bodies, after, limit)

    def read_at(self, positions: Sequence[int]) -> list[LogRecord]:
        return _reading("read_at", self.source.read_at, positions)

    def head(self) -> int:
        return _reading("head", self.source.head)


def store_errors(source: LogSource) -> LogSource:
    """``source``, with what it raises that ``failures.is_environmental`` would blame on the
    data (a driver's own exception: a lost connection, a timeout) raised as a
    :class:`StoreError`.

    A read of the log that fails is never an event's fault: the projector
    would otherwise quarantine the events whose projection read the log back
    (the ``latest`` view), or stop on a read of the next batch, where a
    ``StoreError`` is retried.
    """
    return source if isinstance(source, StoreErrorsSource) else StoreErrorsSource(source)


class EventLog(abc.ABC):
    """An append-only log of encoded events.

    Errors: a failure of the storage (a lost connection, a timeout, a full
    disk) must be raised as a :class:`~metastream.errors.StoreError` (or an
    ``OSError``); the consumer then leaves the batch pending and retries it.
    Anything else an append raises is taken as caused by the entries
    appended (``failures.is_environmental``): the consumer splits the batch
    to find them and dead-letters them. A backend wraps its driver's
    exceptions accordingly (the SQLite log does, with ``sqlite.translated``).
    """

    def problem(self) -> str | None:
        """Why the storage is no longer the one opened (nothing more may be acked), or ``None``.

        The consumer asks before each transaction and before acknowledging
        entries; a reason stops it for good, with nothing more acked (the
        entries stay in the stream). The default: the storage is still the
        one opened. ``SqliteEventLog`` checks that the file at its path is
        still the one it opened (deleted or replaced: ``identity.py``). It
        must be cheap (it runs a few times per batch) and may raise an
        ``OSError`` the environment caused (retrying may get past it).
        """
        return None

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """An async context manager: everything inside commits or rolls back together."""

    @abc.abstractmethod
    async def append(self, events: Sequence[Incoming]) -> AppendResult:
        """Append ``events`` in order, skipping ids already in the log.

        Must be called inside :meth:`transaction`.
        """

    async def append_encoded(
        self, bodies: Sequence[bytes]
    ) -> tuple[AppendResult, list[Undecodable]]:
        """Decode ``bodies`` off the stream and append those that decode, in one transaction.

        Committed when it returns. Bodies are decoded with ``decode_incoming``
        (which refuses an event without ``event_id`` and metadata values the
        projections could not use); those that fail are left out and
        returned as ``(index, reason)``. Implementations may override this
        to do it all in one hop to their storage.
        """
        good, bad = decode_bodies(bodies)
        async with self.transaction():
            result = await self.append(good)
        return result, bad

    @abc.abstractmethod
    async def read(self, after: int = 0, limit: int = 1000) -> list[LogRecord]:
        """Up to ``limit`` records with position > ``after``, in position order."""

    @abc.abstractmethod
    async def read_positions(self, positions: Sequence[int]) -> list[LogRecord]:
        """The records at ``positions`` (missing ones are left out), in position order."""

    @abc.abstractmethod
    async def head(self) -> int:
        """The position of the last event, 0 for an empty log."""

    @abc.abstractmethod
    async def contains(self, event_ids: Sequence[bytes]) -> set[bytes]:
        """Which of ``event_ids`` are in the log."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the storage."""
