"""The store: the event log and the projector over one connection, for async callers.

What tests, ``metastream views rebuild`` and the benchmarks use; the live
path is split in two processes: the consumer appends through the
:class:`~metastream.eventlog.base.EventLog` port and the projector follows
the log (``follow.py``). ``ingest`` appends a batch *and* applies it to the
views in one transaction (a convenience for tests and benchmarks: the
views are the same as the projector would write); ``catch_up`` brings
projections that are behind to the head of the log; ``replay`` rebuilds
projections from position 0.

Each call runs as one function in the database's own thread
(``eventlog/database.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from metastream.eventlog import sqlite as logdb
from metastream.eventlog.base import AppendResult, Incoming
from metastream.eventlog.database import Database
from metastream.eventlog.sqlite import (
    SqliteEventLog,
    connect,
    gc_paused,
    transaction,
    translated,
)
from metastream.projections.base import Projection
from metastream.projections.projector import CATCH_UP_CHUNK, Projector, default_projections
from metastream.schemas import decode_stored

__all__ = ["CATCH_UP_CHUNK", "Progress", "Store", "default_projections", "gc_paused"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as a rebuild advances."""

T = TypeVar("T")


class Store:
    """The event log and the projections, over one database thread."""

    def __init__(
        self,
        db: Database,
        projections: Sequence[Projection],
        path: Path,
        synchronous: str = "FULL",
    ) -> None:
        self.db = db
        self.log = SqliteEventLog(db)
        self.projector = Projector(projections)
        self.projections = self.projector.projections
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
            await store._run("cannot create the views", store.projector.prepare)
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
            return await self.db.run(fn, *args)

    # -- in the database thread --------------------------------------------

    def _ingest(self, conn: sqlite3.Connection, events: Sequence[Incoming]) -> AppendResult:
        with gc_paused(), transaction(conn):
            result = logdb.append(conn, events)
            if result.new:
                self.projector.apply(conn, result.records())
        return result

    # -- the async API -----------------------------------------------------

    async def checkpoints(self) -> dict[str, int]:
        """Each projection's last applied log position."""
        return await self._run("cannot read the checkpoints", self.projector.checkpoints)

    async def ingest(self, events: Sequence[Incoming]) -> AppendResult:
        """Append ``events`` (deduplicated) and apply the projections, in one transaction."""
        return await self._run("cannot write to the store", self._ingest, events)

    async def ingest_bytes(self, bodies: Sequence[bytes]) -> AppendResult:
        """Decode and ingest encoded events; raises ``DecodeError`` before writing anything."""
        return await self.ingest([Incoming(decode_stored(body), body) for body in bodies])

    async def catch_up(self, progress: Progress | None = None, chunk: int = CATCH_UP_CHUNK) -> int:
        """Apply the log to every projection that is behind; returns how many events it read.

        Works in transactions of ``chunk`` events, so it can be interrupted and
        resumed. Commits here use ``synchronous=NORMAL``: what they write can
        be rebuilt from the log.
        """
        done = 0
        await self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                read, remaining = await self._run(
                    "cannot rebuild the views", self.projector.step, chunk
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
        await self._run("cannot reset the views", self.projector.reset, chosen)
        return await self.catch_up(progress)
