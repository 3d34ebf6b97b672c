"""The store: the event log and its projections in one SQLite file.

``ingest`` appends a batch and applies every projection in one transaction;
``catch_up`` brings projections that are behind (added later, rebuilt, or
built by another version of metastream) to the head of the log; ``replay``
rebuilds projections from position 0.

Each batch runs as one function in the database's thread (see
``eventlog.sqlite.run``). Projections are applied in order, each only up to
where the one before it has reached (the latest view resolves references
through the registry), so a projection being rebuilt never sees a registry
that is behind it. Several processes may write the same file: ``BEGIN
IMMEDIATE`` serialises them, and checkpoints are read inside each
transaction.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from metastream.errors import StoreError
from metastream.eventlog import sqlite as logdb
from metastream.eventlog.base import AppendResult, Incoming
from metastream.eventlog.sqlite import SqliteEventLog, connect, translated
from metastream.projections.base import CHECKPOINTS_DDL, Projection, Records
from metastream.projections.latest import LatestProjection
from metastream.projections.registry import RegistryProjection
from metastream.schemas import DecodeError, StoredEvent, decode_stored
from metastream.schemas.codec import decode_incoming

log = logging.getLogger("metastream.store")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as a rebuild advances."""

CATCH_UP_CHUNK: Final = 20_000
_incoming = tuple.__new__  # Incoming without NamedTuple's Python-level __new__
T = TypeVar("T")


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


def default_projections() -> list[Projection]:
    return [RegistryProjection(), LatestProjection()]


def decode_rows(rows: Sequence[tuple[int, bytes]]) -> list[tuple[int, StoredEvent]]:
    try:
        return [(position, decode_stored(body)) for position, body in rows]
    except DecodeError as exc:
        raise StoreError(
            f"the event log holds an event this version cannot read ({exc}); upgrade metastream"
        ) from exc


class Store:
    """The event log and the projections, over one aiosqlite connection."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        projections: Sequence[Projection],
        path: Path,
        synchronous: str = "FULL",
    ) -> None:
        self.db = db
        self.log = SqliteEventLog(db)
        self.projections = list(projections)
        self.path = path
        self.synchronous = synchronous

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        projections: Sequence[Projection] | None = None,
        synchronous: str = "FULL",
        catch_up: bool = True,
        progress: Progress | None = None,
    ) -> Store:
        """Open (or create) the store at ``path``; by default bring every view up to date."""
        db = await connect(path, synchronous=synchronous)
        store = cls(db, projections or default_projections(), Path(path), synchronous)
        try:
            await store._run("cannot create the views", store._prepare)
            if catch_up:
                await store.catch_up(progress)
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, action: str, fn: Callable[..., T], *args: Any) -> T:
        with translated(action):
            return await logdb.run(self.db, fn, *args)

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        logdb.begin(conn)
        ok = False
        try:
            yield
            ok = True
        finally:
            logdb.finish(conn, ok)

    # -- in the database thread --------------------------------------------

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.executescript(CHECKPOINTS_DDL)
        for projection in self.projections:  # executescript commits: keep it outside
            projection.create(conn)
        with self._transaction(conn):
            stored = {
                name: version
                for name, version in conn.execute("SELECT name, version FROM checkpoints")
            }
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
                    projection.reset(conn)
                    self._set_checkpoint(conn, projection, 0)

    def _checkpoints(self, conn: sqlite3.Connection) -> dict[str, int]:
        stored = dict(conn.execute("SELECT name, position FROM checkpoints").fetchall())
        return {p.name: int(stored.get(p.name, 0)) for p in self.projections}

    @staticmethod
    def _set_checkpoint(conn: sqlite3.Connection, projection: Projection, position: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints(name, position, version) VALUES (?, ?, ?)",
            (projection.name, position, projection.version),
        )

    def _apply(self, conn: sqlite3.Connection, records: Records) -> None:
        checkpoints = self._checkpoints(conn)
        first = records[0][0]
        reached = records[-1][0]  # how far the projection before this one got
        for projection in self.projections:
            done = checkpoints[projection.name]
            if not first - 1 <= done < reached:
                reached = min(reached, done)  # behind (left to catch_up) or done already
                continue
            projection.apply(conn, records[done + 1 - first : reached + 1 - first])
            self._set_checkpoint(conn, projection, reached)

    def _ingest(self, conn: sqlite3.Connection, events: Sequence[Incoming]) -> AppendResult:
        with gc_paused(), self._transaction(conn):
            result = logdb.append(conn, events)
            if result.new:
                self._apply(conn, result.records())
        return result

    def _ingest_encoded(
        self, conn: sqlite3.Connection, bodies: Sequence[bytes]
    ) -> tuple[AppendResult, list[tuple[int, str]]]:
        with gc_paused():
            good: list[Incoming] = []
            bad: list[tuple[int, str]] = []
            for i, body in enumerate(bodies):
                try:
                    good.append(_incoming(Incoming, (decode_incoming(body), body)))
                except Exception as exc:
                    bad.append((i, f"cannot decode: {exc}"))
            return self._ingest(conn, good), bad

    def _catch_up_chunk(self, conn: sqlite3.Connection, chunk: int) -> tuple[int, int]:
        """Apply the next ``chunk`` events to the projections behind; ``(read, remaining)``."""
        with gc_paused(), self._transaction(conn):
            head = logdb.head(conn)
            start = min(self._checkpoints(conn).values(), default=head)
            if start >= head:
                return 0, 0
            rows = logdb.read_bodies(conn, start, chunk)
            self._apply(conn, decode_rows(rows))
            return len(rows), head - rows[-1][0]

    def _reset(self, conn: sqlite3.Connection, chosen: Sequence[Projection]) -> None:
        with self._transaction(conn):
            for projection in chosen:
                projection.reset(conn)
                self._set_checkpoint(conn, projection, 0)

    # -- the async API -----------------------------------------------------

    async def checkpoints(self) -> dict[str, int]:
        """Each projection's last applied log position."""
        return await self._run("cannot read the checkpoints", self._checkpoints)

    async def ingest(self, events: Sequence[Incoming]) -> AppendResult:
        """Append ``events`` (deduplicated) and apply the projections, in one transaction."""
        return await self._run("cannot write to the store", self._ingest, events)

    async def ingest_bytes(self, bodies: Sequence[bytes]) -> AppendResult:
        """Decode and ingest encoded events; raises ``DecodeError`` before writing anything."""
        return await self.ingest([Incoming(decode_stored(body), body) for body in bodies])

    async def ingest_encoded(
        self, bodies: Sequence[bytes]
    ) -> tuple[AppendResult, list[tuple[int, str]]]:
        """Decode and ingest what can be decoded, in the database's thread.

        Returns the result and ``(index, reason)`` for each body that could not
        be decoded (left out): bodies off the stream are decoded with
        ``decode_incoming``, which also refuses an event without ``event_id``
        and metadata values the projections could not use. Decoding here,
        with the collector paused, costs the caller's thread nothing: a
        consumer's event loop stays free to read the next batch.
        """
        return await self._run("cannot write to the store", self._ingest_encoded, bodies)

    async def catch_up(self, progress: Progress | None = None, chunk: int = CATCH_UP_CHUNK) -> int:
        """Apply the log to every projection that is behind; returns how many events it read.

        Works in transactions of ``chunk`` events, so it can be interrupted and
        resumed. Commits here use ``synchronous=NORMAL``: what they write can
        be rebuilt from the log, and ingest commits the log with ``FULL``.
        """
        done = 0
        await self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                read, remaining = await self._run(
                    "cannot rebuild the views", self._catch_up_chunk, chunk
                )
                if not read:
                    break
                done += read
                if progress is not None:
                    progress(done, done + remaining)
        finally:
            await self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        return done

    async def replay(
        self, names: Sequence[str] | None = None, progress: Progress | None = None
    ) -> int:
        """Rebuild the named projections (all by default) from position 0."""
        known = {p.name: p for p in self.projections}
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            raise ValueError(f"no projection named {', '.join(unknown)}; known: {', '.join(known)}")
        chosen = [known[n] for n in names] if names else self.projections
        await self._run("cannot reset the views", self._reset, chosen)
        return await self.catch_up(progress)
