"""The producer's background threads: the sender, and the overflow spooler.

The sender thread waits for events, lingers up to ``linger_ms`` for a batch
to fill (or until ``batch_size`` events are queued, or ``flush()`` asks),
then takes *everything* queued (up to a byte cap) and sends it with one
socket write. It takes everything because it shares the GIL with the code
that publishes: each time it gives the GIL up (every socket call) it may wait
up to the interpreter's switch interval (5 ms) to get it back, so the number
of round trips per event, not the size of a batch, decides how fast it can
go. Its own per-event work is C-level (see ``frames.py``).

When Redis cannot be reached, batches go to the spool instead, and the
sender tries to connect again with a growing pause (up to a second). Once
connected it hands its own spool file over for resending, claims the spool
files of producers that died, and resends them oldest first, a batch at a
time between live batches. A spool file is deleted only after Redis
acknowledged all of it.

The overflow spooler sleeps until a caller finds the queue over
``max_queue_bytes`` (the sender is stuck in a slow send, or Redis is slower
than the callers), then moves queued events to the spool until the queue is
down to half the limit. Callers never write the spool themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Final

from metastream import config
from metastream.config import Settings
from metastream.producer.queue import EventQueue
from metastream.producer.resend import Resender
from metastream.producer.spool import SpoolError, SpoolFile, SpoolWriter, claim_orphans
from metastream.producer.transport import Transport, TransportError
from metastream.urls import mask_url

logger = logging.getLogger("metastream.producer")

RECONNECT_MIN: Final = 0.05
RECONNECT_MAX: Final = 1.0
"""The longest pause between connection attempts while events wait in the spool."""
STACK_RECHECK: Final = 1.0
"""How often to look for the local stack (``stack.json``) when no Redis is configured."""
ORPHAN_SCAN: Final = 5.0
"""How often a connected producer looks for spool files left by producers that died."""
IDLE_WAIT: Final = 30.0
MAX_TAKE_BYTES: Final = 1024 * 1024
"""The most bytes sent (or spooled) at once. Building a batch holds the GIL (in C, about
0.2 µs an event), so this bounds how long a caller can be held up by it (~1 ms), as well
as memory in flight and one write's time on a slow link. 1 MiB (~7,000 events) every
cycle of ~15 ms is still several times what one thread can publish."""

_warned_unreachable = False
"""One warning per process when Redis cannot be reached (then only INFO)."""


def _warn_unreachable(url: str | None, spool_dir: Path, reason: object) -> None:
    global _warned_unreachable
    where = (
        f"Redis at {mask_url(url)} cannot be reached ({reason})"
        if url
        else "no Redis is configured (METASTREAM_REDIS_URL is not set) and the local stack is "
        "not running"
    )
    if _warned_unreachable:
        logger.info("metastream producer: %s; spooling to %s", where, spool_dir)
        return
    _warned_unreachable = True
    logger.warning(
        "metastream: %s. Events are being spooled to %s and will be sent as soon as Redis "
        "is reachable. Start the local stack with `metastream up` (or set "
        "METASTREAM_REDIS_URL).",
        where,
        spool_dir,
    )


class Sender:
    """Moves events from an ``EventQueue`` to Redis, or to the spool when that fails."""

    def __init__(
        self,
        queue: EventQueue,
        *,
        settings: Settings,
        redis_url: str | None,
        stream: str,
        spool_dir: Path,
    ) -> None:
        self.q = queue
        self.settings = settings
        self.redis_url = redis_url  # None: the local stack, looked up again and again
        self.spool_dir = spool_dir
        self.batch_size = settings.batch_size
        self.linger = settings.linger_ms / 1000
        self.take_bytes = min(MAX_TAKE_BYTES, max(1 << 16, settings.max_queue_bytes // 4))
        self.transport = Transport(stream)
        self.resender = Resender(self.transport, self._reconnect_now)
        self.spool = SpoolWriter(spool_dir)
        self.backlog: list[SpoolFile] = []  # spool files to resend, oldest first
        self.held: deque[tuple[int, list[bytes]]] = deque()  # neither sent nor spooled yet
        self.wakeup = threading.Event()
        self.overflow = threading.Event()
        self.stopping = False
        # Counters, each written by one thread only (the sender), read by anyone.
        self.sent = 0
        self.resent = 0
        self.failed = 0
        self._threads: list[threading.Thread] = []
        self._next_attempt = 0.0
        self._backoff = RECONNECT_MIN
        self._next_scan = 0.0
        self._scanned = False  # looked for orphaned spool files since we connected
        self._batch_started = 0.0
        self._spool_error_logged = False
        self._hold_until = 0.0
        self._overflow_warned = False
        self._refusal_logged = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start both threads (raises ``RuntimeError`` at interpreter shutdown)."""
        self._batch_started = time.monotonic()  # the first events linger too
        sender = threading.Thread(target=self._run, name="metastream-sender", daemon=True)
        spooler = threading.Thread(
            target=self._overflow_loop, name="metastream-overflow", daemon=True
        )
        sender.start()
        self._threads = [sender]
        spooler.start()
        self._threads.append(spooler)

    def stop(self, timeout: float) -> bool:
        """Ask both threads to stop; whether they did within ``timeout`` seconds."""
        self.stopping = True
        self.wakeup.set()
        self.overflow.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def release(self) -> None:
        """Close the connection and let go of every spool file (they stay for the next producer)."""
        self.transport.close()
        for file in self.backlog:
            file.release()
        self.backlog.clear()
        self.spool.close()

    def abandon(self) -> None:
        """In a forked child: drop the parent's connection and descriptors, keep its locks."""
        self.stopping = True
        self.transport.abandon()
        self.spool.abandon()
        for file in self.backlog:
            file.release()  # closes our copy only; the parent's descriptor keeps the lock
        self.backlog.clear()

    # -- the sender thread -------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping:
            try:
                self._wait()
                if not self.stopping:
                    self._cycle()
            except Exception:  # a bug must not end the thread: events would pile up unseen
                logger.exception("metastream producer: unexpected error in the sender thread")
                self.failed += 1
                time.sleep(0.2)  # not wakeup.wait(): callers may keep it set

    def _wait(self) -> None:
        """Sleep until a batch is due, a retry is due, or a caller wakes us."""
        q = self.q
        now = time.monotonic()
        if q.waiting:
            if self._queue_due(now):
                return
            wake_at, deadline = self.batch_size, self._batch_started + self.linger
        else:
            if self.transport.connected and self.backlog:
                return
            wake_at, deadline = 1, now + IDLE_WAIT
            if self.transport.connected:
                deadline = min(deadline, self._next_scan)
            elif self.held or self.backlog or self.spool.path is not None or not self._scanned:
                deadline = min(deadline, self._next_attempt)  # spool waiting: keep trying
            if self.held:
                if now >= self._hold_until:
                    return
                deadline = min(deadline, self._hold_until)
        q.sleep_until(wake_at)
        self.wakeup.clear()
        if q.waiting < wake_at and not q.flush_wanted and not self.stopping:  # re-check
            self.wakeup.wait(max(0.0, deadline - now))
        q.awake()
        if wake_at == 1 and q.waiting:  # woken from idle: the linger starts now
            self._batch_started = time.monotonic()

    def _queue_due(self, now: float) -> bool:
        q = self.q
        n = q.waiting
        return n > 0 and (
            n >= self.batch_size or q.flush_wanted or now >= self._batch_started + self.linger
        )

    def _cycle(self) -> None:
        now = time.monotonic()
        self._connect_if_due(now)
        for _ in range(len(self.held)):
            self._deliver(*self.held.popleft())
        if self._queue_due(now):
            limit = max(self.batch_size, self.take_bytes // self.q.average_size())
            got = self.q.take(limit)
            if got is not None:
                self._batch_started = now
                self._deliver(*got)
        if self.transport.connected:
            if self.spool.path is not None and self.q.pending_bytes <= self.q.max_bytes // 2:
                self._rotate_own()  # the overflow spooled while we were connected: resend it
            if self.backlog:
                self._resend_some()
        self.q.prepare_segments()

    def _rotate_own(self) -> None:
        own = self.spool.rotate()
        if own is not None:
            self.backlog.append(own)

    def _deliver(self, ticket: int, batch: list[bytes]) -> None:
        """Send a batch; what Redis did not acknowledge goes to the spool."""
        unsent = batch
        if self.transport.connected:
            try:
                self.transport.send(batch)
                unsent = []
            except TransportError as exc:
                self._send_failed(exc)
                unsent = exc.unsent
            except Exception as exc:  # a bug must not lose the batch: spool it
                logger.exception("metastream producer: unexpected error sending a batch")
                self._send_failed(TransportError(str(exc), batch))
            self.sent += len(batch) - len(unsent)
        if unsent:
            self._spool_or_hold(ticket, unsent)
        else:
            self._backoff = RECONNECT_MIN
            self.q.settle(ticket)

    def _spool_or_hold(self, ticket: int, bodies: list[bytes]) -> bool:
        """Spool ``bodies``; if the spool cannot be written, keep them for a later try."""
        if self.q.is_closing:  # close() has copied every batch in flight to the spool itself
            self.q.settle(ticket)
            return True
        try:
            self.spool.append(bodies)
        except SpoolError as exc:
            self._hold_until = time.monotonic() + 1.0
            if not self._spool_error_logged:
                self._spool_error_logged = True
                logger.error(
                    "metastream: cannot write the spool (%s); %d events are kept in memory "
                    "until Redis or the spool accepts them",
                    exc,
                    len(bodies),
                )
            self.held.append((ticket, bodies))
            return False
        self._spool_error_logged = False
        self.q.settle(ticket, spooled=len(bodies))
        return True

    def _back_off(self) -> None:
        """The next connection attempt waits twice as long as the last (up to a cap)."""
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RECONNECT_MAX)

    def _send_failed(self, exc: TransportError) -> None:
        self.failed += 1
        self.transport.close()
        self._back_off()
        if exc.unsent and "refused" in str(exc) and not self._refusal_logged:
            self._refusal_logged = True
            logger.error("metastream: %s; the events are spooled and retried", exc)
        else:
            logger.info("metastream producer: %s; spooling and reconnecting", exc)

    def _connect_if_due(self, now: float) -> bool:
        if self.transport.connected:
            if now >= self._next_scan:
                self._claim_orphans(now)
            return True
        if now < self._next_attempt:
            return False
        url = self.redis_url or config.redis_url(self.settings)
        if url is None:
            self._set_reachable(False)
            _warn_unreachable(None, self.spool_dir, "")
            self._next_attempt = now + STACK_RECHECK
            return False
        try:
            self.transport.connect(url)
        except TransportError as exc:
            self.failed += 1
            self._set_reachable(False)
            _warn_unreachable(url, self.spool_dir, exc.__cause__ or exc)
            self._back_off()
            return False
        self._set_reachable(True)
        self._rotate_own()  # what we spooled while down is resent from here on
        self._claim_orphans(now)
        return True

    def _set_reachable(self, reachable: bool) -> None:
        self.q.set_reachable(reachable)

    def _reconnect_now(self) -> bool:
        """After a failed resend: whether Redis answers a new connection (for ``Resender``)."""
        url = self.redis_url or config.redis_url(self.settings)
        return url is not None and self.transport.try_connect(url)

    def _claim_orphans(self, now: float) -> None:
        self._next_scan = now + ORPHAN_SCAN
        mine = [file.path for file in self.backlog]
        if self.spool.path is not None:
            mine.append(self.spool.path)
        try:
            found = claim_orphans(self.spool_dir, mine)
        except OSError as exc:
            logger.info("metastream producer: cannot look for orphaned spool files: %s", exc)
            return
        self._scanned = True
        if found:
            logger.info(
                "metastream producer: resending %d spool file(s) left by other producers",
                len(found),
            )
            self.backlog.extend(found)

    def _resend_some(self) -> None:
        """Resend a batch from the oldest spool file; delete the file once Redis has all of it.

        An event Redis will not take is set aside after a few tries
        (``resend.py``), so it never holds back the files behind it.
        """
        file = self.backlog[0]
        try:
            sent = self.resender.send_some(file, max(self.batch_size, 10_000), self.take_bytes)
        except TransportError as exc:  # the file is read again from its last commit
            self._send_failed(exc)
            return
        except OSError as exc:
            logger.error("metastream: cannot resend spool %s (%s); left for later", file.path, exc)
            self.backlog.pop(0)
            file.release()
            return
        if sent:
            self.resent += sent
            self._backoff = RECONNECT_MIN
        if file.done:
            self.backlog.pop(0)
            file.remove()
            if file.own and file.records:
                self.q.spool_resent(file.records, set_aside=file.set_aside)

    # -- the overflow thread -----------------------------------------------------

    def _overflow_loop(self) -> None:
        q = self.q
        while not self.stopping:
            self.overflow.wait()
            self.overflow.clear()
            low = q.max_bytes // 2
            while not self.stopping and q.pending_bytes > low:
                if not self._overflow_warned:
                    self._overflow_warned = True
                    logger.warning(
                        "metastream: more than %d bytes of events are waiting to be sent "
                        "(METASTREAM_MAX_QUEUE_BYTES); Redis is slower than events are "
                        "published, the rest goes to the spool in %s",
                        q.max_bytes,
                        self.spool_dir,
                    )
                got = q.take(max(1, (q.pending_bytes - low) // q.average_size()))
                if got is None or not self._spool_or_hold(*got):
                    break
