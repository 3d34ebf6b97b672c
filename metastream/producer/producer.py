"""``Producer``: publish encoded events without ever waiting on Redis.

``publish(body)`` copies the event into a memory-mapped spool segment
(``segments.py``) and an in-memory queue, and returns; a background thread
sends batches (``sender.py``). What cannot be sent goes to a local spool
and is sent later: by this process, by the local stack's drainer
(``drain.py``), or by any producer that finds it. Delivery is
at-least-once: an event may reach the stream twice (the consumer
deduplicates by ``event_id``), it is never dropped.

Threads: ``publish`` may be called from any thread. Processes: after
``fork()`` a producer in the child starts afresh (its own queue, connection,
thread and spool file); events queued in the parent before the fork are
sent by the parent only. asyncio: ``publish`` is synchronous and never
blocks, so call it directly from coroutines; ``flush`` and ``close`` block,
so call them with ``await asyncio.to_thread(producer.flush, 5.0)``.

At interpreter exit every producer is closed (``atexit``; in
``multiprocessing`` children, a ``multiprocessing.util.Finalize``): it gets
``exit_timeout`` seconds (5 by default) to send what is queued, and spools
the rest (events already in a segment are not written again: the segment
becomes a spool file). A process killed with SIGKILL (the OOM killer) loses
nothing: every event it published is in a segment in the page cache, and the
stack's drainer (or any producer) sends the segments it left.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from pathlib import Path

from metastream.config import Settings
from metastream.producer.queue import EventQueue
from metastream.producer.segments import SEGMENT_BYTES
from metastream.producer.sender import Sender
from metastream.producer.spool import SpoolError, has_spool_files
from metastream.producer.stats import ProducerStats

logger = logging.getLogger("metastream.producer")

DEFAULT_EXIT_TIMEOUT = 5.0
"""Seconds a producer gets at interpreter exit to send what is queued before spooling it."""

_producers: weakref.WeakSet[Producer] = weakref.WeakSet()
_exiting = False


class Producer:
    """Publishes encoded events to a Redis stream from a background thread.

    Args:
        settings: defaults to ``Settings.from_env()``; supplies the Redis URL,
            stream, spool directory, ``linger_ms``, ``batch_size`` and
            ``max_queue_bytes``.
        redis_url: overrides ``settings.redis_url``. With neither, the local
            stack (``$METASTREAM_HOME/stack.json``) is used, looked for again
            every second while it is not running.
        stream: overrides ``settings.stream``.
        spool_dir: overrides ``settings.spool_dir``.
        exit_timeout: seconds to keep sending at interpreter exit.
        segment_bytes: the size of a spool segment (``segments.SEGMENT_BYTES`` by
            default); 0 keeps queued events in memory only, so a SIGKILL loses them
            (for comparisons, and where no file may be written).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_url: str | None = None,
        stream: str | None = None,
        spool_dir: Path | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.redis_url = redis_url or self.settings.redis_url
        self.stream = stream or self.settings.stream
        self.spool_dir = Path(spool_dir) if spool_dir is not None else self.settings.spool_dir
        self.exit_timeout = exit_timeout
        self.segment_bytes = segment_bytes
        self._setup()
        _producers.add(self)
        if has_spool_files(self.spool_dir):  # resend what earlier producers left, now
            self._start_or_spool()

    def _setup(self) -> None:
        self._state = threading.Lock()  # starting and closing; never taken by publish
        self._running = False
        self._closed = False
        self._queue = EventQueue(
            self.settings.max_queue_bytes,
            self._wake,
            self._overflow,
            segments_dir=self.spool_dir if self.segment_bytes else None,
            segment_bytes=self.segment_bytes,
        )
        self._sender = Sender(
            self._queue,
            settings=self.settings,
            redis_url=self.redis_url,
            stream=self.stream,
            spool_dir=self.spool_dir,
        )

    def publish(self, body: bytes) -> None:
        """Write one encoded event (``encode_event(event)``) to the segment, queue it, return.

        Never blocks and never raises for transport problems: when Redis is
        down or slow the event is spooled by a background thread. Once this
        returns, the event survives the process being killed. After
        ``close()`` the event is written straight to the spool (a single
        ``write()``), since no thread is left to do it.
        """
        self._queue.put(body)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until this producer's events are in Redis; at most ``timeout`` seconds.

        What ``True`` means, exactly: every event *this producer* published
        before the call is acknowledged by Redis, including events that went
        through its own spool and were resent. It says nothing about spool
        files other processes left behind (those are sent by the local
        stack's drainer; ``metastream.producer.spool_summary(spool_dir)``
        counts them, and ``metastream status`` shows them).

        ``False``: the time ran out; or every event is either acknowledged
        or safely in the spool while Redis cannot be reached (returned as
        soon as that is so); or some of this producer's events were set
        aside because Redis would not take them (``stats.set_aside``,
        ``metastream spool list``). Blocks: from asyncio code use
        ``await asyncio.to_thread(producer.flush, timeout)``.
        """
        q = self._queue
        if not self._running:
            return q.all_settled()
        target = q.request_flush()
        self._sender.wakeup.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        return q.wait_settled(target, deadline)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, spool the rest, stop the thread.

        Events not sent stay in the spool for the stack's drainer (or any
        producer): a segment still holding unsent events becomes a spool
        file as it is, without writing them again. Publishing after
        ``close()`` still works: each event is written straight to the spool.
        """
        with self._state:
            if self._closed:
                return
            self._closed = True  # from here on nothing starts the threads again
        q = self._queue
        sender = self._sender
        if self._running:
            self._flush_running(timeout)
        with self._state:
            running, self._running = self._running, False
        q.closing()  # from here on every put calls _wake, which spools the event
        if not running:
            self._spool_leftovers()
            return
        stopped = sender.stop(timeout=min(1.0, max(0.1, timeout)))
        q.closing()  # again: the sender may have reset it on its way out
        self._spool_leftovers()
        if stopped:
            sender.release()
        else:  # stuck in a send: its files stay open until the process ends
            sender.transport.close()
            sender.spool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> ProducerStats:
        """The counters (see ``ProducerStats``), read without stopping anything."""
        q = self._queue
        s = self._sender
        pending, own, kept, set_aside = q.counts()
        return ProducerStats(
            queued=q.queued,
            sent=s.sent,
            spooled=s.spool.written + kept,
            resent=s.resent,
            failed=s.failed,
            dropped=0,
            pending=pending,
            pending_bytes=max(0, q.pending_bytes),
            spool_backlog=max(0, own),
            set_aside=set_aside,
            connected=s.transport.connected,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<Producer stream={self.stream!r} {state}>"

    # -- called by EventQueue.put, on the caller's thread ------------------------------

    def _wake(self) -> None:
        if self._running:
            wakeup = self._sender.wakeup
            if not wakeup.is_set():
                wakeup.set()
        else:
            self._start_or_spool()

    def _overflow(self) -> None:
        if self._running:
            overflow = self._sender.overflow
            if not overflow.is_set():
                overflow.set()
            if self._queue.waiting >= self._queue.wake_at:  # an idle sender can help too
                self._wake()
        else:
            self._start_or_spool()

    def _start_or_spool(self) -> None:
        with self._state:
            if not self._closed and not self._running:
                try:
                    self._sender.start()
                except RuntimeError:  # interpreter shutdown: no new threads
                    self._closed = True
                else:
                    self._running = True
                    return
            if self._running:
                return
        self._spool_leftovers()

    # -- closing -----------------------------------------------------------------------

    def _flush_running(self, timeout: float) -> None:
        try:
            self.flush(timeout)
        except Exception:
            logger.exception("metastream producer: flush failed while closing")

    def _spool_leftovers(self) -> None:
        """Leave what is still queued or in flight in the spool, on this thread.

        Events in segments stay there (a segment with unsent events is kept
        as a spool file once the producer is closed); the others, if any, are
        written to the spool file.
        """
        q = self._queue
        in_segments, bodies = q.take_leftovers()
        if self._closed:
            q.close_segments()
        if bodies:
            try:
                self._sender.spool.append(bodies)
            except SpoolError as exc:
                logger.error(
                    "metastream: %d events could not be sent nor spooled (%s); they are lost "
                    "when this process ends",
                    len(bodies),
                    exc,
                )
                q.restore(bodies)
                bodies = []
        if in_segments or bodies:
            q.spooled_leftovers(in_segments, len(bodies))

    def _after_fork_in_child(self) -> None:
        self._sender.abandon()
        self._queue.abandon()
        self._setup()


def close_all() -> None:
    """Close every producer of this process (at interpreter exit)."""
    global _exiting
    _exiting = True
    for producer in list(_producers):
        try:
            producer.close(producer.exit_timeout)
        except Exception:
            logger.exception("metastream producer: closing %r failed", producer)


def exiting() -> bool:
    """Whether this process is closing its producers for good."""
    return _exiting


def _register_multiprocessing_exit(_: object = None) -> None:
    """``multiprocessing`` children end with ``os._exit``: atexit never runs there."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, close_all, exitpriority=10)


class _MultiprocessingHook:
    """The object ``multiprocessing.util.register_after_fork`` needs (it keeps a weak reference)."""


_multiprocessing_hook: _MultiprocessingHook | None = None


def _before_fork() -> None:
    # A multiprocessing child clears its finalizers right after the fork, then runs
    # its after-fork callbacks: register ours there, once, while the parent forks.
    global _multiprocessing_hook
    util = sys.modules.get("multiprocessing.util")
    if util is not None and _multiprocessing_hook is None:
        _multiprocessing_hook = _MultiprocessingHook()
        util.register_after_fork(_multiprocessing_hook, _register_multiprocessing_exit)


def _in_child_after_fork() -> None:
    global _exiting
    _exiting = False
    for producer in list(_producers):
        producer._after_fork_in_child()


atexit.register(close_all)
os.register_at_fork(before=_before_fork, after_in_child=_in_child_after_fork)
if "multiprocessing" in sys.modules and sys.modules["multiprocessing"].parent_process() is not None:
    _register_multiprocessing_exit()  # imported inside a multiprocessing child
