"""What a projection is, and where the projections keep their checkpoints.

A projection turns log records into view rows. The projector
(``projector.py``) applies it to a batch of records read from the log and
writes its checkpoint (the last log position it applied) in the same
transaction, so a view never runs ahead of or behind its checkpoint: after a
crash, a projection resumes exactly where its rows end.

Projections are synchronous code over a ``sqlite3.Connection``, a batch at a
time. ``quarantine`` lists the events a projection could not apply and
skipped (with the reason); it is emptied with the projection's rows.
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Sequence
from typing import ClassVar, Final

from metastream.eventlog.base import LogSource
from metastream.schemas import StoredEvent

CHECKPOINTS_DDL: Final = """
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    version  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    projection TEXT NOT NULL,
    position   INTEGER NOT NULL,
    event_id   BLOB NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (projection, position)
) WITHOUT ROWID;
"""

Records = Sequence[tuple[int, StoredEvent]]
"""``(log position, event)`` pairs, consecutive and in position order."""


class Projection(abc.ABC):
    """A view built from the log.

    ``version`` is bumped whenever the view's layout or meaning changes; a
    store opened on a database whose rows were built by another version
    rebuilds that projection from the log.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    ddl: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]

    def create(self, conn: sqlite3.Connection) -> None:
        """Create the view's tables (``executescript`` commits: call outside a transaction)."""
        conn.executescript(self.ddl)

    def reset(self, conn: sqlite3.Connection) -> None:
        """Delete every row of the view (inside the caller's transaction)."""
        for table in self.tables:
            conn.execute(f"DELETE FROM {table}")

    def read_log_from(self, source: LogSource) -> None:  # noqa: B027  # optional
        """Read earlier events from ``source`` rather than the SQLite log of ``apply``'s
        connection (the ``Projector`` calls it with its own source); most projections read
        only the records they are given."""

    def forget(self) -> None:  # noqa: B027  # optional: most projections keep nothing
        """Drop what the projection keeps in memory: a transaction it wrote in was rolled back."""

    @abc.abstractmethod
    def apply(self, conn: sqlite3.Connection, records: Records) -> None:
        """Apply ``records`` inside the caller's transaction."""
