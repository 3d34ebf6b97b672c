"""One :class:`Reader` per worker thread, and reading "as of" from a query parameter.

Litestar runs synchronous handlers in a thread pool; SQLite connections are
cheap, and one per thread lets reads run side by side (WAL snapshots) with
no lock. Every reader is closed when the app shuts down.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Final

from litestar.datastructures import State

from metastream.api.models import AsOf
from metastream.query import Reader

MAX_POSITION: Final = 2**63 - 1
"""The largest log position SQLite can hold."""


class Readers:
    """Readers of one database, one per thread that asks."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._local = threading.local()
        self._all: list[Reader] = []
        self._lock = threading.Lock()
        self._generation = 0

    def get(self) -> Reader:
        reader: Reader | None = getattr(self._local, "reader", None)
        if reader is None or self._local.generation != self._generation:
            reader = Reader(self.db)
            self._local.reader = reader
            self._local.generation = self._generation
            with self._lock:
                self._all.append(reader)
        return reader

    def close(self) -> None:
        """Close every reader; a later ``get`` opens a new one (the app may start again)."""
        with self._lock:
            self._generation += 1
            readers, self._all = self._all, []
        for reader in readers:
            reader.close()


def reader_of(state: State) -> Reader:
    """This thread's reader, from the app's ``Readers`` (``state.readers``)."""
    readers: Readers = state.readers
    return readers.get()


def parse_as_of(text: str | None) -> AsOf | None:
    """``as_of``: a log position (digits) or an ISO 8601 time (UTC when it has no offset).

    Raises ``ValueError`` (a 400) for anything else.
    """
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if text.isdigit():
        position = int(text)
        if position > MAX_POSITION:
            raise ValueError(f"as_of={text[:60]!r} is past any log position")
        return AsOf(position=position, time=None)
    when = iso_time(text)
    if when is None:
        raise ValueError(
            f"as_of={text[:60]!r} is neither a log position (a whole number) "
            "nor an ISO 8601 time such as 2026-12-01T12:00:00Z"
        )
    return AsOf(position=None, time=when.astimezone(datetime.UTC))


def iso_time(text: str) -> datetime.datetime | None:
    """An ISO 8601 time (UTC when it has no offset), or ``None`` when ``text`` is not one."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def as_of_seconds(as_of: AsOf | None) -> float | None:
    return None if as_of is None or as_of.time is None else as_of.time.timestamp()
