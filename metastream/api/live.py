"""Live updates: what the views have committed, pushed to browsers as Server-Sent Events.

One task per server polls the projections' checkpoint (``applied_through``,
one indexed query) every ``interval`` seconds and wakes every open stream
when it moves; nothing here reads Redis, so a client that fetches after a
push sees the data it was told about. Each message is ``event: commit``,
``id: <position>``, ``data: {"position": <position>}``; a client that
reconnects with ``Last-Event-ID`` gets a message at once if the views moved
while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import anyio.to_thread

from metastream.query import Reader

KEEPALIVE: Final = 15.0
"""Seconds between comments on an idle stream, so proxies keep it open."""


class Committed:
    """The position the views have applied through, and a way to wait for it to move."""

    def __init__(self, db: Path, interval: float = 0.1) -> None:
        self.db = db
        self.interval = interval
        self.position = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reader: Reader | None = None
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = Reader(self.db)
        self.position = await anyio.to_thread.run_sync(self._reader.applied_through)
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        self.closed = True
        self._wake()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._reader is not None:
            self._reader.close()

    def end_streams(self) -> None:
        """End every open stream, from any thread (the server is about to stop).

        The server waits for open responses before it shuts down: without
        this, an open browser tab would hold it until its graceful timeout.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def end() -> None:
            self.closed = True
            self._wake()

        loop.call_soon_threadsafe(end)

    def stopped(self) -> bool:
        """Whether the server is shutting down (a method: it changes while a stream waits)."""
        return self.closed

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _poll(self) -> None:
        assert self._reader is not None
        while True:
            await asyncio.sleep(self.interval)
            position = await anyio.to_thread.run_sync(self._reader.applied_through)
            if position != self.position:
                self.position = position
                self._wake()

    async def wait_past(self, position: int, patience: float) -> int:
        """The committed position once it differs from ``position`` (or after ``patience`` s)."""
        if self.position == position and not self.closed:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), patience)
        return self.position


def message(position: int) -> str:
    return f"id: {position}\nevent: commit\ndata: {json.dumps({'position': position})}\n\n"


async def stream(committed: Committed, last_seen: int | None) -> AsyncIterator[str]:
    """The SSE body: a first message (unless the client is up to date), then one per change."""
    yield "retry: 1000\n\n"
    shown = last_seen
    if shown != committed.position:
        shown = committed.position
        yield message(shown)
    while not committed.closed:
        position = await committed.wait_past(shown if shown is not None else -1, KEEPALIVE)
        if committed.stopped():
            return
        if position == shown:
            yield ": keep-alive\n\n"
            continue
        shown = position
        yield message(position)
