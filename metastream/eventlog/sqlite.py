"""The event log in SQLite (WAL mode), in a thread of its own (``database.py``).

One table, kept as small as appends need: ``position`` is the rowid (so
SQLite gives ``max + 1`` and positions stay gapless: rows are never
deleted, and an ignored duplicate consumes no rowid), ``event_id`` has the
unique index that deduplicates, ``body`` holds the msgpack bytes exactly as
they came off the stream. Indexes by entity live with the projections: an
index on the log itself cost ~30% of append throughput when measured here.

The work is written as plain functions over a ``sqlite3.Connection`` and run
in the connection's own thread, a whole batch per hop (``Database.run``):
per-call hops left the decoding thread and the database thread fighting
over the GIL for every row (a rebuild ran at ~100k events/s that way, ~165k
in one hop).

The consumer's whole write is :meth:`SqliteEventLog.append_encoded`: decode
the bodies, append them (deduplicated), commit with ``synchronous=FULL``,
in one hop. Nothing else is on that path: the views are written by the
projector (``metastream.projections.projector``), which follows the log
through a :class:`SqliteLogSource` over its own connection to the same file.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

from metastream.errors import StoreError
from metastream.eventlog.base import (
    AppendResult,
    EventLog,
    Incoming,
    LogRecord,
    Undecodable,
    decode_bodies,
)
from metastream.eventlog.database import Database
from metastream.eventlog.identity import DatabaseIdentity
from metastream.private_files import create_private_file, make_private_dir

SCHEMA_VERSION: Final = 1
SQL_PARAMS: Final = 900  # per query, below SQLite's lowest default limit of 999
# Rows come back as (position, event_id, body) tuples of the right types: wrap
# them without NamedTuple's Python-level __new__, which cost ~1 µs a record.
_record = tuple.__new__

LOG_DDL: Final = """
CREATE TABLE IF NOT EXISTS log_events (
    position INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL UNIQUE,
    body     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

T = TypeVar("T")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Re-raise SQLite's errors as :class:`StoreError`, naming what failed."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{action}: {exc}") from exc


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``SQL_PARAMS``: one query's ``IN (...)`` each."""
    for start in range(0, len(items), SQL_PARAMS):
        yield items[start : start + SQL_PARAMS]


def open_connection(
    path: str | Path, *, readonly: bool = False, synchronous: str = "FULL"
) -> sqlite3.Connection:
    """A ``sqlite3`` connection to the metastream database at ``path`` (created unless read-only).

    ``synchronous=FULL`` (the default) makes every commit durable against a
    power cut, which matters because the consumer acknowledges stream
    entries once their transaction commits. A new database (and a new
    directory for it) is created readable by its owner only. The connection
    is in autocommit mode (``isolation_level=None``): transactions are
    begun and ended explicitly (``begin``, ``finish``).
    """
    path = Path(path)
    with translated(f"cannot open {path}"):
        if readonly:
            if not path.exists():
                raise StoreError(f"no metastream database at {path}")
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            return conn
        # Private from the start: SQLite gives -wal and -shm the database file's mode.
        make_private_dir(path.parent)
        create_private_file(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.executescript(
                "PRAGMA page_size=16384;"  # measured ~15% faster appends than 4096
                "PRAGMA journal_mode=WAL;"
                f"PRAGMA synchronous={synchronous};"
                "PRAGMA busy_timeout=30000;"
                "PRAGMA cache_size=-65536;"
            )
            conn.executescript(LOG_DDL)
            _check_schema_version(conn, path)
        except BaseException:
            conn.close()
            raise
        return conn


async def connect(
    path: str | Path, *, readonly: bool = False, synchronous: str = "FULL", inline: bool = False
) -> Database:
    """:func:`open_connection` in a :class:`Database` thread of its own (or ``inline``)."""
    return await Database.open(
        lambda: open_connection(path, readonly=readonly, synchronous=synchronous), inline=inline
    )


LOG_LOCATION: Final = "event_log"
"""The ``meta`` row saying where the log is when it is not in this file (its masked URL)."""


def set_log_location(conn: sqlite3.Connection, where: str | None) -> None:
    """Record (``None``: forget) that this file's views follow a log kept in ``where``."""
    if where is None:
        conn.execute("DELETE FROM meta WHERE name=?", (LOG_LOCATION,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", (LOG_LOCATION, where)
        )


def log_location(conn: sqlite3.Connection) -> str | None:
    """Where the log of this file's views is, when it is not in this file."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE name=?", (LOG_LOCATION,)).fetchone()
    except sqlite3.OperationalError:  # a file without the meta table: the log is here
        return None
    return None if row is None else str(row[0])


def _check_schema_version(conn: sqlite3.Connection, path: Path) -> None:
    row = conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT OR IGNORE INTO meta(name, value) VALUES('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer metastream (schema {row[0]}, "
            f"this one knows {SCHEMA_VERSION}); upgrade metastream"
        )


# -- the log's operations, on a connection ---------------------------------


def begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def finish(conn: sqlite3.Connection, ok: bool) -> None:
    if ok:
        conn.execute("COMMIT")
    elif conn.in_transaction:
        conn.execute("ROLLBACK")


class transaction:  # used as a statement: `with transaction(conn):`
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        begin(self.conn)

    def __exit__(self, kind: object, *rest: object) -> None:
        finish(self.conn, kind is None)


def head(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT max(position) FROM log_events").fetchone()[0] or 0)


def append(conn: sqlite3.Connection, events: Sequence[Incoming]) -> AppendResult:
    """Append inside the caller's transaction, skipping ids already in the log."""
    if not events:
        return AppendResult(0, [], 0)
    before = head(conn)
    cursor = conn.executemany(
        "INSERT OR IGNORE INTO log_events(event_id, body) VALUES (?, ?)",
        [(event.event_id, body) for event, body in events],
    )
    if cursor.rowcount == len(events):  # the common case: nothing was there before
        return AppendResult(before + 1, list(events), 0)
    rows = conn.execute(
        "SELECT event_id FROM log_events WHERE position > ? ORDER BY position", (before,)
    )
    # OR IGNORE inserted the first occurrence of each id not yet in the log, in order.
    inserted = {row[0] for row in rows}
    new = []
    for incoming in events:
        if incoming.event.event_id in inserted:
            inserted.discard(incoming.event.event_id)
            new.append(incoming)
    return AppendResult(before + 1, new, len(events) - len(new))


def append_encoded(
    conn: sqlite3.Connection, bodies: Sequence[bytes]
) -> tuple[AppendResult, list[Undecodable]]:
    """Decode ``bodies`` off the stream, append those that decode, commit: one transaction.

    Decoding with ``decode_incoming`` refuses what the projections could
    not use (see ``schemas.codec``), so an event in the log can always be
    projected. The collector is paused meanwhile (see ``gc_paused``).
    """
    with gc_paused():
        good, bad = decode_bodies(bodies)
        with transaction(conn):
            result = append(conn, good)
        return result, bad


def read(conn: sqlite3.Connection, after: int, limit: int) -> list[LogRecord]:
    rows = conn.execute(
        "SELECT position, event_id, body FROM log_events WHERE position > ? "
        "ORDER BY position LIMIT ?",
        (after, limit),
    )
    return [_record(LogRecord, row) for row in rows]


def read_bodies(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, bytes]]:
    """``(position, body)`` of up to ``limit`` events after ``after``: the bulk read."""
    return conn.execute(
        "SELECT position, body FROM log_events WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()


def read_at(conn: sqlite3.Connection, positions: Sequence[int]) -> list[LogRecord]:
    wanted = sorted(set(positions))
    out: list[LogRecord] = []
    for chunk in chunks(wanted):
        rows = conn.execute(
            "SELECT position, event_id, body FROM log_events "
            f"WHERE position IN ({placeholders(len(chunk))}) ORDER BY position",
            chunk,
        )
        out.extend(_record(LogRecord, row) for row in rows)
    return out


def positions_of(conn: sqlite3.Connection, event_ids: Sequence[bytes]) -> dict[bytes, int]:
    """The log positions of those of ``event_ids`` that are in the log."""
    out: dict[bytes, int] = {}
    for chunk in chunks(event_ids):
        out.update(
            (bytes(e), p)
            for e, p in conn.execute(
                f"SELECT event_id, position FROM log_events WHERE event_id IN "
                f"({placeholders(len(chunk))})",
                chunk,
            )
        )
    return out


def contains(conn: sqlite3.Connection, event_ids: Sequence[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    ids = list(event_ids)
    for chunk in chunks(ids):
        rows = conn.execute(
            f"SELECT event_id FROM log_events WHERE event_id IN ({placeholders(len(chunk))})",
            chunk,
        )
        found.update(row[0] for row in rows)
    return found


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during bulk work.

    Decoding a batch allocates several objects per event, and with thousands of
    events alive the collector's passes cost more than the decoding (measured:
    2.5 µs an event with it, 1.3 µs without). Events hold no reference cycles;
    plain reference counting frees them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SqliteLogSource:
    """The :class:`~metastream.eventlog.base.LogSource` over a ``sqlite3`` connection.

    The projector's default: its own connection, on the file that holds both
    the log and the views. Calls are the module's functions as they are (no
    copy per row, SQLite's errors raised as they are).
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def read_bodies(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return read_bodies(self.conn, after, limit)

    def read_at(self, positions: Sequence[int]) -> list[LogRecord]:
        return read_at(self.conn, positions)

    def head(self) -> int:
        return head(self.conn)


class SqliteEventLog(EventLog):
    """The :class:`EventLog` on an open :class:`Database`.

    ``identity``: the file as it was opened (``open`` records it), for
    :meth:`problem`; without one, the file is not checked.
    """

    def __init__(self, db: Database, identity: DatabaseIdentity | None = None) -> None:
        self.db = db
        self.identity = identity

    @classmethod
    async def open(
        cls, path: str | Path, *, synchronous: str = "FULL", inline: bool = False
    ) -> SqliteEventLog:
        """The log at ``path`` (created if missing), in a database thread of its own.

        ``inline``: the caller's thread runs the SQL, blocking its event loop
        for the length of a call (see ``consumer/app.py`` for why the consumer
        does so). The file's identity is recorded for :meth:`problem`.
        """
        db = await connect(path, synchronous=synchronous, inline=inline)
        try:
            identity = DatabaseIdentity(Path(path))
        except BaseException:
            await db.close()
            raise
        return cls(db, identity)

    def problem(self) -> str | None:
        """Why the file at the log's path is not the one opened (deleted, replaced), or ``None``."""
        return None if self.identity is None else self.identity.problem()

    async def _run(self, action: str, fn: Callable[..., T], *args: Any) -> T:
        with translated(action):
            return await self.db.run(fn, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self._run("cannot begin a transaction", begin)
        try:
            yield
        except BaseException:
            await self._run("cannot roll back", finish, False)
            raise
        await self._run("cannot commit", finish, True)

    async def append(self, events: Sequence[Incoming]) -> AppendResult:
        return await self._run("cannot append to the event log", append, events)

    async def append_encoded(
        self, bodies: Sequence[bytes]
    ) -> tuple[AppendResult, list[Undecodable]]:
        return await self._run("cannot write to the event log", append_encoded, bodies)

    async def read(self, after: int = 0, limit: int = 1000) -> list[LogRecord]:
        return await self._run("cannot read the event log", read, after, limit)

    async def read_positions(self, positions: Sequence[int]) -> list[LogRecord]:
        return await self._run("cannot read the event log", read_at, positions)

    async def head(self) -> int:
        return await self._run("cannot read the event log", head)

    async def contains(self, event_ids: Sequence[bytes]) -> set[bytes]:
        return await self._run("cannot read the event log", contains, event_ids)

    async def close(self) -> None:
        await self.db.close()
