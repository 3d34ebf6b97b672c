"""``Producer``: publish encoded events without ever waiting on Redis.

``publish(body)`` appends to an in-memory queue and returns; a background
thread sends batches (``sender.py``). What cannot be sent goes to a local
spool and is sent later, by this process or the next producer to start.
Delivery is at-least-once: an event may reach the stream twice (the
consumer deduplicates by ``event_id``), it is never dropped.

Threads: ``publish`` may be called from any thread. Processes: after
``fork()`` a producer in the child starts afresh (its own queue, connection,
thread and spool file); events queued in the parent before the fork are
sent by the parent only. asyncio: ``publish`` is synchronous and never
blocks, so call it directly from coroutines; ``flush`` and ``close`` block,
so call them with ``await asyncio.to_thread(producer.flush, 5.0)``.

At interpreter exit every producer is closed (``atexit``; in
``multiprocessing`` children, a ``multiprocessing.util.Finalize``): it gets
``exit_timeout`` seconds (5 by default) to send what is queued, and spools
the rest. A process killed with SIGKILL loses only what was still in memory;
what reached the spool is sent by the next producer.
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
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_url: str | None = None,
        stream: str | None = None,
        spool_dir: Path | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.redis_url = redis_url or self.settings.redis_url
        self.stream = stream or self.settings.stream
        self.spool_dir = Path(spool_dir) if spool_dir is not None else self.settings.spool_dir
        self.exit_timeout = exit_timeout
        self._setup()
        _producers.add(self)
        if has_spool_files(self.spool_dir):  # resend what earlier producers left, now
            self._start_or_spool()

    def _setup(self) -> None:
        self._state = threading.Lock()  # starting and closing; never taken by publish
        self._running = False
        self._closed = False
        self._queue = EventQueue(self.settings.max_queue_bytes, self._wake, self._overflow)
        self._sender = Sender(
            self._queue,
            settings=self.settings,
            redis_url=self.redis_url,
            stream=self.stream,
            spool_dir=self.spool_dir,
        )

    def publish(self, body: bytes) -> None:
        """Queue one encoded event (``encode_event(event)``) and return at once.

        Never blocks and never raises for transport problems: when Redis is
        down or slow the event is spooled by a background thread. After
        ``close()`` the event is written straight to the spool (a single
        ``write()``), since no thread is left to do it.
        """
        self._queue.put(body)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far is in Redis; at most ``timeout`` seconds.

        Returns ``True`` when every event published before the call is
        acknowledged by Redis, including events that went through the spool
        and were resent. Returns ``False`` when the time ran out, or as soon
        as every event is either acknowledged or safely in the spool while
        Redis cannot be reached. Blocks: from asyncio code use
        ``await asyncio.to_thread(producer.flush, timeout)``.
        """
        q = self._queue
        if not self._running:
            with q.cond:
                return not q.items and not q.in_flight and q.own_spooled == 0
        with q.cond:
            target = q.queued
            q.flush_target = max(q.flush_target, target)
        self._sender.wakeup.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with q.cond:
            if not q.cond.wait_for(lambda: q.watermark() >= target, _left(deadline)):
                return False
            q.cond.wait_for(lambda: q.own_spooled <= 0 or q.reachable is False, _left(deadline))
            return q.own_spooled <= 0

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, spool the rest, stop the thread.

        Spool files stay on disk for the next producer. Publishing after
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
        q.wake_at = 0  # from here on every put calls _wake, which spools the event
        if not running:
            self._spool_leftovers()
            return
        stopped = sender.stop(timeout=min(1.0, max(0.1, timeout)))
        q.wake_at = 0  # again: the sender may have reset it on its way out
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
        with q.cond:
            in_flight = sum(map(len, q.in_flight.values()))
            own = q.own_spooled
        return ProducerStats(
            queued=q.queued,
            sent=s.sent,
            spooled=s.spool.written,
            resent=s.resent,
            failed=s.failed,
            dropped=0,
            pending=len(q.items) + in_flight,
            pending_bytes=max(0, q.pending_bytes),
            spool_backlog=max(0, own),
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
            if len(self._queue.items) >= self._queue.wake_at:  # an idle sender can help too
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
        """Write whatever is still queued or in flight to the spool, on this thread."""
        q = self._queue
        bodies = q.take_everything()
        if not bodies:
            return
        try:
            self._sender.spool.append(bodies)
        except SpoolError as exc:
            logger.error(
                "metastream: %d events could not be sent nor spooled (%s); they are lost "
                "when this process ends",
                len(bodies),
                exc,
            )
            q.items.extendleft(reversed(bodies))
            return
        with q.cond:
            q.own_spooled += len(bodies)

    def _after_fork_in_child(self) -> None:
        self._sender.abandon()
        self._setup()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


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
