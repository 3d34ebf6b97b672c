"""The in-memory queue between the callers of ``publish()`` and the producer's threads.

What a caller pays (``put``): a lock held for two integer additions (exact
counters, uncontended unless several threads publish at once, and never held
by the background threads), one ``deque.append`` (atomic, no lock), and two
comparisons that decide whether a background thread must be woken. No I/O,
no waiting on anything but that lock.

The background threads ``take`` events in FIFO order and ``settle`` them
once they are acknowledged by Redis or written to the spool. Every take gets
a ticket (the sequence number of its first event), so ``flush()`` can wait for
"every event queued before I was called is settled" even while other threads
keep publishing: the low watermark is the first ticket still in flight.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from itertools import repeat, starmap
from typing import Final

NEVER: Final = 1 << 62
"""A queue length ``put`` never reaches: nobody needs waking."""


class EventQueue:
    """Encoded events waiting for the sender, with the counters that describe them."""

    __slots__ = (
        "closing",
        "cond",
        "drained_bytes",
        "flush_target",
        "in_flight",
        "items",
        "lock",
        "max_bytes",
        "on_overflow",
        "on_wake",
        "own_spooled",
        "queued",
        "queued_bytes",
        "reachable",
        "taken",
        "wake_at",
    )

    def __init__(
        self, max_bytes: int, on_wake: Callable[[], None], on_overflow: Callable[[], None]
    ) -> None:
        self.items: deque[bytes] = deque()
        self.max_bytes = max_bytes
        self.on_wake = on_wake
        self.on_overflow = on_overflow
        # Written by callers, under `lock`.
        self.lock = threading.Lock()
        self.queued = 0
        self.queued_bytes = 0
        # `put` calls `on_wake` once the queue holds this many events. The sender sets
        # it: 1 while idle, batch_size while lingering, NEVER while busy. 0 means "call
        # on_wake on every put": before the threads start, and after close.
        self.wake_at = 0
        # Written by the background threads (and flush/close), under `cond`.
        self.cond = threading.Condition(threading.Lock())
        self.drained_bytes = 0
        self.taken = 0
        self.in_flight: dict[int, list[bytes]] = {}
        self.flush_target = 0
        self.closing = False
        self.reachable: bool | None = None  # None: not tried yet
        self.own_spooled = 0  # events this producer spooled and Redis has not acknowledged

    def put(self, body: bytes) -> None:
        """Queue one encoded event. The caller's whole cost of publishing."""
        if type(body) is not bytes:
            body = _as_bytes(body)
        size = len(body)
        with self.lock:
            self.queued += 1
            self.queued_bytes += size
        self.items.append(body)
        if self.queued_bytes - self.drained_bytes > self.max_bytes:
            self.on_overflow()
        elif len(self.items) >= self.wake_at:
            self.on_wake()

    @property
    def pending_bytes(self) -> int:
        return self.queued_bytes - self.drained_bytes

    def take(self, limit: int) -> tuple[int, list[bytes]] | None:
        """Up to ``limit`` events from the head of the queue and their ticket, or ``None``."""
        items = self.items
        with self.cond:
            n = min(len(items), limit)
            if n <= 0 or self.closing:
                return None
            batch = list(starmap(items.popleft, repeat((), n)))  # n pops, in C
            ticket = self.taken
            self.taken = ticket + n
            self.in_flight[ticket] = batch
            self.drained_bytes += sum(map(len, batch))
        return ticket, batch

    def settle(self, ticket: int, spooled: int = 0) -> None:
        """The events of ``ticket`` are acknowledged, or ``spooled`` of them are in our spool."""
        with self.cond:
            del self.in_flight[ticket]
            self.own_spooled += spooled
            self.cond.notify_all()

    def watermark(self) -> int:
        """How many events, counted from the first, are settled. Call with ``cond`` held."""
        return min(self.in_flight) if self.in_flight else self.taken

    def take_everything(self) -> list[bytes]:
        """Every event still queued or in flight, oldest first: what ``close`` must spool.

        Events in flight are copied, not taken: if their send still succeeds
        they are in Redis twice, which the consumer's deduplication absorbs.
        """
        with self.cond:
            self.closing = True
            flying = [self.in_flight[t] for t in sorted(self.in_flight)]
            rest = list(starmap(self.items.popleft, repeat((), len(self.items))))
            self.drained_bytes += sum(map(len, rest))
            self.taken += len(rest)
        return [body for batch in flying for body in batch] + rest

    def average_size(self) -> int:
        return max(1, self.queued_bytes // max(1, self.queued))


def _as_bytes(body: object) -> bytes:
    """A copy of a bytes-like ``body`` (it must not change once queued); else ``TypeError``."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"publish() takes the encoded event as bytes, got {type(body).__name__}")
