"""The queue between the callers of ``publish()`` and the producer's threads.

What a caller pays (``put``): under a lock (uncontended unless several
threads publish at once, and never held by the background threads for more
than a few pointer moves), the event is copied into this producer's
memory-mapped spool segment (``segments.py``: two memory copies and a CRC,
so a SIGKILL no longer loses it), appended to the in-memory queue, and
counted. Then two comparisons decide whether a background thread must be
woken. No system call, no waiting on anything but that lock.

The background threads ``take`` events in FIFO order and ``settle`` them
once they are acknowledged by Redis or written to the spool. Every take gets
a ticket (the sequence number of its first event), so ``flush()`` can wait
for "every event queued before I was called is settled" even while other
threads keep publishing: the low watermark is the first ticket still in
flight. Settled events are marked in their segment in publishing order,
and a segment whose events are all settled is deleted.

Every field is private; each state transition is one method, and the
docstring of each says which thread calls it and which lock it takes:

* callers: ``put``;
* the sender and overflow threads: ``take``, ``settle``, ``spool_resent``,
  ``set_reachable``, ``sleep_until``/``awake``, ``prepare_segments``;
* ``Producer.flush``: ``request_flush``, ``wait_settled``;
* ``Producer.close``: ``closing``, ``take_leftovers``, ``spooled_leftovers``,
  ``restore``, ``close_segments``; after ``fork()``: ``abandon``.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from itertools import repeat, starmap
from pathlib import Path
from typing import Final

from metastream.producer.records import HEADER
from metastream.producer.segments import Segment, Segments

NEVER: Final = 1 << 62
"""A queue length ``put`` never reaches: nobody needs waking."""

_crc32 = zlib.crc32
_pack_header = HEADER.pack_into
_HEADER_SIZE: Final = HEADER.size


class EventQueue:
    """Encoded events waiting for the sender, their segments, and the counters that describe them.

    Args:
        max_bytes: ``put`` calls ``on_overflow`` while more than this is in memory.
        on_wake: called by ``put`` when a batch is due (see ``sleep_until``).
        on_overflow: called by ``put`` while the queue is over ``max_bytes``.
        segments_dir: where segments are made; ``None`` keeps events in memory only
            (what the producer did before segments; the benchmark compares both).
        segment_bytes: the size of a segment.
    """

    __slots__ = (
        "_closing",
        "_cond",
        "_done",
        "_drained_bytes",
        "_flush_target",
        "_in_flight",
        "_items",
        "_journal_next",
        "_kept",
        "_lock",
        "_max_bytes",
        "_on_overflow",
        "_on_wake",
        "_own_set_aside",
        "_own_spooled",
        "_queued",
        "_queued_bytes",
        "_reachable",
        "_segments",
        "_taken",
        "_wake_at",
    )

    def __init__(
        self,
        max_bytes: int,
        on_wake: Callable[[], None],
        on_overflow: Callable[[], None],
        *,
        segments_dir: Path | None = None,
        segment_bytes: int = 0,
    ) -> None:
        self._items: deque[bytes] = deque()
        self._max_bytes = max_bytes
        self._on_wake = on_wake
        self._on_overflow = on_overflow
        # Written by callers, under `_lock`.
        self._lock = threading.Lock()
        self._queued = 0
        self._queued_bytes = 0
        self._segments: Segments | None = None
        if segments_dir is not None:
            self._segments = (
                Segments(segments_dir, segment_bytes) if segment_bytes else Segments(segments_dir)
            )
        # `put` calls on_wake once the queue holds this many events. The sender sets it:
        # 1 while idle, batch_size while lingering, NEVER while busy. 0 means "call
        # on_wake on every put": before the threads start, and after close.
        self._wake_at = 0
        # Written by the background threads (and flush/close), under `_cond`.
        self._cond = threading.Condition(threading.Lock())
        self._drained_bytes = 0
        self._taken = 0
        self._in_flight: dict[int, list[bytes]] = {}
        self._done: dict[int, list[bytes]] = {}  # settled out of order, not marked yet
        self._journal_next = 0  # the first event whose settling is not marked in its segment
        self._flush_target = 0
        self._closing = False
        self._reachable: bool | None = None  # None: not tried yet
        self._own_spooled = 0  # events this producer spooled and Redis has not acknowledged
        self._kept = 0  # events left in segments kept as spool files at close
        self._own_set_aside = 0  # own spooled events Redis would not take (setaside.py)

    # -- callers -----------------------------------------------------------------

    def put(self, body: bytes) -> None:
        """Write one encoded event to the segment and queue it. The caller's whole cost."""
        if type(body) is not bytes:
            body = _as_bytes(body)
        size = len(body)
        with self._lock:
            segments = self._segments
            if segments is not None:
                segment = segments.active
                if (
                    segment is not None
                    and (end := segment.end + _HEADER_SIZE + size) <= segment.size
                ):
                    mm = segment.mm
                    mm[end - size : end] = body  # the body first: a header means a whole record
                    _pack_header(mm, segment.end, size, _crc32(body))
                    segment.end = end
                    segment.count += 1
                    segments.journaled += 1
                else:
                    segments.write_slow(body, _crc32(body))
            self._queued += 1
            self._queued_bytes += size
            self._items.append(body)
        if self._queued_bytes - self._drained_bytes > self._max_bytes:
            self._on_overflow()
        elif len(self._items) >= self._wake_at:
            self._on_wake()

    # -- what anyone may read ----------------------------------------------------------

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def pending_bytes(self) -> int:
        """Bytes of events in memory that are neither taken nor settled."""
        return self._queued_bytes - self._drained_bytes

    @property
    def queued(self) -> int:
        """Events ever passed to ``put``."""
        return self._queued

    @property
    def waiting(self) -> int:
        """Events in memory not taken by a background thread yet."""
        return len(self._items)

    @property
    def wake_at(self) -> int:
        return self._wake_at

    @property
    def flush_wanted(self) -> bool:
        """``flush()`` waits for events that are still queued."""
        return self._taken < self._flush_target

    @property
    def reachable(self) -> bool | None:
        return self._reachable

    @property
    def is_closing(self) -> bool:
        return self._closing

    def average_size(self) -> int:
        return max(1, self._queued_bytes // max(1, self._queued))

    def counts(self) -> tuple[int, int, int, int]:
        """Events in memory not settled, own spooled events not acknowledged, own events
        kept in segments at close, own events set aside."""
        with self._cond:
            in_flight = sum(map(len, self._in_flight.values()))
            pending = len(self._items) + in_flight
            return pending, self._own_spooled, self._kept, self._own_set_aside

    def segment_paths(self) -> list[Path]:
        """The segments this producer holds (for tests and tools)."""
        segments = self._segments
        return [s.path for s in list(segments.live)] if segments is not None else []

    # -- the background threads ----------------------------------------------------------

    def sleep_until(self, wake_at: int) -> None:
        """Sender, before it sleeps: ``put`` wakes it once this many events are queued."""
        self._wake_at = wake_at

    def awake(self) -> None:
        """Sender, awake and busy: no ``put`` needs to wake it."""
        self._wake_at = NEVER

    def take(self, limit: int) -> tuple[int, list[bytes]] | None:
        """Up to ``limit`` events from the head of the queue and their ticket, or ``None``."""
        items = self._items
        with self._cond:
            n = min(len(items), limit)
            if n <= 0 or self._closing:
                return None
            batch = list(starmap(items.popleft, repeat((), n)))  # n pops, in C
            ticket = self._taken
            self._taken = ticket + n
            self._in_flight[ticket] = batch
            self._drained_bytes += sum(map(len, batch))
        return ticket, batch

    def settle(self, ticket: int, spooled: int = 0) -> None:
        """The events of ``ticket`` are acknowledged, or ``spooled`` of them are in our spool.

        Their records are marked settled in their segments once every earlier
        event is settled too; segments left with nothing unsettled are deleted.
        """
        finished: list[Segment] = []
        with self._cond:
            batch = self._in_flight.pop(ticket)
            self._own_spooled += spooled
            segments = self._segments
            if segments is not None and not segments.closed:
                self._done[ticket] = batch
                finished = self._mark_settled(segments)
            self._cond.notify_all()
        for segment in finished:
            segment.remove()

    def _mark_settled(self, segments: Segments) -> list[Segment]:
        """Mark the settled events that now follow on from the last marked one. Under ``_cond``."""
        finished: list[Segment] = []
        done = self._done
        while (batch := done.pop(self._journal_next, None)) is not None:
            journaled = segments.journaled - self._journal_next
            if journaled > 0:
                finished += segments.settle(batch[:journaled] if journaled < len(batch) else batch)
            self._journal_next += len(batch)
        return finished

    def spool_resent(self, events: int, set_aside: int = 0) -> None:
        """Sender: ``events`` of our own spooled events are done with: acknowledged by Redis,
        except ``set_aside`` of them, which Redis would not take."""
        with self._cond:
            self._own_spooled -= events
            self._own_set_aside += set_aside
            self._cond.notify_all()

    def set_reachable(self, reachable: bool) -> None:
        """Sender: whether Redis answered the last connection attempt."""
        if self._reachable is not reachable:
            with self._cond:
                self._reachable = reachable
                self._cond.notify_all()

    def prepare_segments(self) -> None:
        """Sender, between batches: make the next segment ahead of time, fault pages in."""
        segments = self._segments
        if segments is not None:
            segments.prepare()

    # -- flush -------------------------------------------------------------------------

    def request_flush(self) -> int:
        """``flush()``: every event queued so far is due now; the target to wait for."""
        with self._cond:
            target = self._queued
            self._flush_target = max(self._flush_target, target)
        return target

    def wait_settled(self, target: int, deadline: float | None) -> bool:
        """Wait until the first ``target`` events are settled and our spool is resent.

        ``False`` when ``deadline`` passes first, as soon as what is left is
        in our spool while Redis cannot be reached, or when some of our
        events were set aside (Redis would not take them).
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._watermark() >= target, _left(deadline)):
                return False
            self._cond.wait_for(
                lambda: self._own_spooled <= 0 or self._reachable is False, _left(deadline)
            )
            return self._own_spooled <= 0 and self._own_set_aside == 0

    def all_settled(self) -> bool:
        """Nothing in memory, in flight, or in our spool (``flush()`` with no thread running)."""
        with self._cond:
            idle = not self._items and not self._in_flight
            return idle and self._own_spooled == 0 and self._own_set_aside == 0

    def _watermark(self) -> int:
        """How many events, counted from the first, are settled. Under ``_cond``."""
        return min(self._in_flight) if self._in_flight else self._taken

    # -- close and fork ----------------------------------------------------------------

    def closing(self) -> None:
        """``close()``: from here on every ``put`` calls ``on_wake``, which spools the event."""
        self._wake_at = 0

    def take_leftovers(self) -> tuple[int, list[bytes]]:
        """Every event still queued or in flight: how many are in segments, and the rest.

        The events in segments stay there (``close_segments`` keeps those
        segments as spool files); the rest, oldest first, must be spooled.
        Events in flight are copied, not taken: if their send still
        succeeds they are in Redis twice, which the consumer's deduplication
        absorbs.
        """
        with self._lock, self._cond:
            self._closing = True
            flying = [(t, self._in_flight[t]) for t in sorted(self._in_flight)]
            start = self._taken
            rest = list(starmap(self._items.popleft, repeat((), len(self._items))))
            self._drained_bytes += sum(map(len, rest))
            self._taken += len(rest)
            journaled = self._segments.journaled if self._segments is not None else 0
            in_segments = 0
            unjournaled: list[bytes] = []
            for first, batch in [*flying, (start, rest)]:
                cut = max(0, min(len(batch), journaled - first))
                in_segments += cut
                unjournaled += batch[cut:]
        return in_segments, unjournaled

    def spooled_leftovers(self, in_segments: int, spooled: int) -> None:
        """``close()``: leftovers are in our spool, ``in_segments`` of them in kept segments."""
        with self._cond:
            self._own_spooled += in_segments + spooled
            self._kept += in_segments
            self._cond.notify_all()

    def restore(self, bodies: list[bytes]) -> None:
        """``close()``: leftovers that could not be spooled go back to the head of the queue."""
        self._items.extendleft(reversed(bodies))

    def close_segments(self) -> list[Path]:
        """``close()``: delete settled segments, keep the others as spool files (their paths).

        Later events are kept in memory and spooled by ``close()``'s path.
        """
        with self._lock, self._cond:
            segments = self._segments
            if segments is None:
                return []
            return segments.close()

    def abandon(self) -> None:
        """In a forked child: unmap the parent's segments (never write into them)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        segments = self._segments
        if segments is not None:
            segments.abandon()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _as_bytes(body: object) -> bytes:
    """A copy of a bytes-like ``body`` (it must not change once queued); else ``TypeError``."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"publish() takes the encoded event as bytes, got {type(body).__name__}")
