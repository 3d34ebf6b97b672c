"""The projector: applies the log to the views, a batch per transaction, from its checkpoints.

The views are derived from the event log. The projector reads the log by
position after the lowest checkpoint, applies the projections, and writes
their rows and their checkpoints in one transaction (the tracking-record
pattern): a crash anywhere rolls the transaction back, and the next run
resumes from the checkpoints, so nothing is lost or applied twice. Live
following, catching up and a rebuild are the same code (``step``).

Projections are applied in order, each only up to where the one before it
has reached (the latest view resolves references through the registry), so
a projection being rebuilt never sees a registry that is behind it. Several
processes may run a projector on the same file: ``BEGIN IMMEDIATE``
serialises them and checkpoints are read inside each transaction.

The log is read and decoded *before* the write transaction begins: the
views and the log share one file (and so one write lock), and the consumer's
appends wait for the projector only while it writes rows.

**Where it reads the log**: through a ``LogSource`` (``eventlog/base.py``),
the port's synchronous read side. By default, ``SqliteLogSource`` over the
connection it writes the views with (the same file, as bytes straight from
SQLite); ``Projector(source=...)`` reads another storage's log (the
``latest`` view's reads of earlier events go to the same source).

**An event a projection cannot apply** (it raises anything that is not an
environmental error, see ``eventlog/failures.py``) must neither stall the
views nor be lost: the batch is rolled back and applied again event by
event, each projection in a savepoint of its own; the projection that fails
on an event skips it, and the event is recorded in ``quarantine`` with the
reason (``quarantined``). Whether an event fails depends only on the views
before it, which are the same whatever the batch boundaries, so a replay
quarantines exactly the same events. An environmental error rolls the
transaction back and is raised: nothing advanced, the caller retries.

Everything here is synchronous code over a ``sqlite3.Connection``: the
projector process (``follow.py``) runs it in its main thread, the async
:class:`~metastream.projections.store.Store` in its database thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Final, NamedTuple

from metastream.errors import StoreError
from metastream.eventlog import sqlite as logdb
from metastream.eventlog.base import LogSource, store_errors
from metastream.eventlog.failures import describe, is_environmental
from metastream.eventlog.sqlite import SqliteLogSource, gc_paused, transaction
from metastream.projections.base import CHECKPOINTS_DDL, Projection, Records
from metastream.projections.latest import LatestProjection
from metastream.projections.registry import RegistryProjection
from metastream.schemas import DecodeError, StoredEvent, decode_stored

log = logging.getLogger("metastream.projector")

CATCH_UP_CHUNK: Final = 20_000
"""Events per transaction when rebuilding or far behind."""


class Quarantined(NamedTuple):
    """An event a projection could not apply: it skipped it."""

    projection: str
    position: int
    event_id: bytes
    reason: str


def default_projections() -> list[Projection]:
    return [RegistryProjection(), LatestProjection()]


def decode_rows(rows: Sequence[tuple[int, bytes]]) -> list[tuple[int, StoredEvent]]:
    try:
        return [(position, decode_stored(body)) for position, body in rows]
    except DecodeError as exc:
        raise StoreError(
            f"the event log holds an event this version cannot read ({exc}); upgrade metastream"
        ) from exc


def quarantined(
    conn: sqlite3.Connection, event_ids: Sequence[bytes] | None = None
) -> list[Quarantined]:
    """The events a projection skipped (those of ``event_ids`` if given), in log order."""
    if event_ids is None:
        rows = conn.execute(
            "SELECT projection, position, event_id, reason FROM quarantine "
            "ORDER BY position, projection"
        ).fetchall()
    else:
        rows = []
        for chunk in logdb.chunks(event_ids):
            rows += conn.execute(
                "SELECT projection, position, event_id, reason FROM quarantine "
                f"WHERE event_id IN ({logdb.placeholders(len(chunk))})",
                chunk,
            ).fetchall()
        rows.sort(key=lambda r: (r[1], r[0]))
    return [Quarantined(p, pos, bytes(e), r) for p, pos, e, r in rows]


def checkpoints(conn: sqlite3.Connection) -> dict[str, int]:
    """Each view's checkpoint (the last log position it applied), by name."""
    return dict(conn.execute("SELECT name, position FROM checkpoints ORDER BY name").fetchall())


def applied_through(conn: sqlite3.Connection) -> int:
    """The position up to which every view has applied the log: "in the views"."""
    row = conn.execute("SELECT min(position) FROM checkpoints").fetchone()
    return int(row[0] or 0)


class Projector:
    """The projections and their checkpoints, over a connection the caller owns.

    ``source``: where the log is read; ``None``, the SQLite log in the file of
    the connection each call is given (the views' own). It is handed to the
    ``latest`` projection, which reads earlier events of an entity from the log.
    Whatever it raises is the storage's failure (``store_errors``): retried,
    never an event quarantined for it.
    """

    def __init__(
        self, projections: Sequence[Projection] | None = None, *, source: LogSource | None = None
    ) -> None:
        self.projections = list(projections or default_projections())
        self.source = None if source is None else store_errors(source)
        if self.source is not None:
            for projection in self.projections:
                projection.read_log_from(self.source)
        self.applied = 0
        """Events this projector applied (or skipped as quarantined) since it was made."""

    # -- set-up ------------------------------------------------------------

    def prepare(self, conn: sqlite3.Connection) -> None:
        """Create the views' tables; a projection built by another version is reset."""
        conn.executescript(CHECKPOINTS_DDL)
        for projection in self.projections:  # executescript commits: keep it outside
            projection.create(conn)
        with transaction(conn):
            stored = dict(conn.execute("SELECT name, version FROM checkpoints").fetchall())
            for projection in self.projections:
                version = stored.get(projection.name)
                if version is None:
                    self._set_checkpoint(conn, projection, 0)
                elif version != projection.version:
                    log.warning(
                        "projection %s was built by version %s of its code, this is version "
                        "%s: rebuilding it from the log",
                        projection.name,
                        version,
                        projection.version,
                    )
                    self._reset_one(conn, projection)

    # -- checkpoints -------------------------------------------------------

    def checkpoints(self, conn: sqlite3.Connection) -> dict[str, int]:
        stored = dict(conn.execute("SELECT name, position FROM checkpoints").fetchall())
        return {p.name: int(stored.get(p.name, 0)) for p in self.projections}

    @staticmethod
    def _set_checkpoint(conn: sqlite3.Connection, projection: Projection, position: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints(name, position, version) VALUES (?, ?, ?)",
            (projection.name, position, projection.version),
        )

    # -- applying ----------------------------------------------------------

    def apply(self, conn: sqlite3.Connection, records: Records) -> None:
        """Apply consecutive ``records`` inside the caller's transaction, quarantining failures."""
        if not records:
            return
        conn.execute("SAVEPOINT project_batch")
        try:
            self._apply(conn, records, self.checkpoints(conn), guarded=False)
        except Exception as exc:
            conn.execute("ROLLBACK TO project_batch")
            self.forget()
            if is_environmental(exc):
                conn.execute("RELEASE project_batch")
                raise
            log.warning(
                "a projection failed on a batch of %d events at positions %d-%d (%s): "
                "applying it event by event to find the events to quarantine",
                len(records),
                records[0][0],
                records[-1][0],
                describe(exc),
            )
            checkpoints = self.checkpoints(conn)
            for record in records:
                self._apply(conn, [record], checkpoints, guarded=True)
        conn.execute("RELEASE project_batch")

    def _apply(
        self,
        conn: sqlite3.Connection,
        records: Records,
        checkpoints: dict[str, int],
        *,
        guarded: bool,
    ) -> None:
        first = records[0][0]
        reached = records[-1][0]  # how far the projection before this one got
        for projection in self.projections:
            done = checkpoints[projection.name]
            if not first - 1 <= done < reached:
                reached = min(reached, done)  # behind (left to catch up) or done already
                continue
            part = records[done + 1 - first : reached + 1 - first]
            if guarded:
                self._apply_guarded(conn, projection, part)
            else:
                projection.apply(conn, part)
            self._set_checkpoint(conn, projection, reached)
            checkpoints[projection.name] = reached

    def _apply_guarded(
        self, conn: sqlite3.Connection, projection: Projection, records: Records
    ) -> None:
        """Apply one event in a savepoint; quarantine it if ``projection`` fails on it."""
        conn.execute("SAVEPOINT project_event")
        try:
            projection.apply(conn, records)
        except Exception as exc:
            conn.execute("ROLLBACK TO project_event")
            conn.execute("RELEASE project_event")
            projection.forget()
            if is_environmental(exc):
                raise
            ((position, event),) = records
            reason = describe(exc)
            conn.execute(
                "INSERT OR REPLACE INTO quarantine(projection, position, event_id, reason) "
                "VALUES (?, ?, ?, ?)",
                (projection.name, position, event.event_id, reason),
            )
            log.error(
                "projection %s cannot apply the event at position %d (%s): quarantined, "
                "the views go on without it (listed by `metastream project --quarantined`)",
                projection.name,
                position,
                reason,
            )
            return
        conn.execute("RELEASE project_event")

    def forget(self) -> None:
        """Drop what the projections keep in memory (the database changed under them)."""
        for projection in self.projections:
            projection.forget()

    def step(self, conn: sqlite3.Connection, chunk: int = CATCH_UP_CHUNK) -> tuple[int, int]:
        """Apply up to ``chunk`` events past the lowest checkpoint in one transaction.

        Returns ``(events read, events left in the log after them)``; ``(0,
        0)`` when every projection is at the head. The log is read and
        decoded before the write transaction (see the module docstring).
        """
        source = self.source if self.source is not None else SqliteLogSource(conn)
        with gc_paused():
            start = min(self.checkpoints(conn).values(), default=0)
            rows = source.read_bodies(start, chunk)
            if not rows:
                return 0, 0
            records = decode_rows(rows)
            with transaction(conn):
                self.apply(conn, records)
                remaining = source.head() - rows[-1][0]
        self.applied += len(rows)
        return len(rows), remaining

    def reset(self, conn: sqlite3.Connection, chosen: Sequence[Projection]) -> None:
        """Empty the ``chosen`` views and set their checkpoints to 0 (one transaction)."""
        with transaction(conn):
            for projection in chosen:
                self._reset_one(conn, projection)

    def _reset_one(self, conn: sqlite3.Connection, projection: Projection) -> None:
        projection.reset(conn)
        projection.forget()
        conn.execute("DELETE FROM quarantine WHERE projection=?", (projection.name,))
        self._set_checkpoint(conn, projection, 0)
