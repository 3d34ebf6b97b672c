"""One ``sqlite3`` connection and the one thread that uses it, for async callers.

Replaces aiosqlite, whose only way to run a whole batch in its thread was
the private ``Connection._execute`` (its 0.22 rewrite broke projects that
called it). Here the thread is ours: ``run(fn, *args)`` calls
``fn(connection, *args)`` in it, in one hop, so a batch of thousands of
rows costs one hand-off of the GIL each way, not one per row (per-call hops
made a rebuild ~40% slower when measured). The thread is a daemon-free
single-worker executor: ``close()`` ends it, and an interpreter exiting
with one open still exits (``concurrent.futures`` joins idle workers).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

T = TypeVar("T")

THREAD_NAME: Final = "metastream-db"


class Database:
    """A ``sqlite3.Connection`` used only from its own thread, awaited from an event loop."""

    def __init__(self, executor: ThreadPoolExecutor | None, conn: sqlite3.Connection) -> None:
        self._executor = executor
        self.conn = conn
        self.closed = False

    @classmethod
    async def open(
        cls, factory: Callable[[], sqlite3.Connection], *, inline: bool = False
    ) -> Database:
        """Run ``factory()`` in a new thread; that thread then serves every call.

        ``inline``: no thread; every call runs in the caller's thread and blocks
        its event loop meanwhile (see ``SqliteEventLog.open`` for when that wins).
        """
        if inline:
            return cls(None, factory())
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, factory)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, conn)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in the connection's thread."""
        if self.closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._executor is None:
            return fn(self.conn, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.conn, *args)

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement (its rows, if any, are discarded)."""
        await self.run(_execute, sql, params)

    async def executescript(self, script: str) -> None:
        await self.run(sqlite3.Connection.executescript, script)

    async def close(self) -> None:
        """Close the connection and end the thread (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._executor is None:
            self.conn.close()
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.conn.close)
        finally:
            self._executor.shutdown(wait=True)


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    conn.execute(sql, params).close()
