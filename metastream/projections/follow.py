"""The projector process: follow the event log and keep the views up to date.

``metastream project`` (and a process of ``metastream up``, and the
consumer's child unless ``METASTREAM_PROJECTOR=0``) runs :func:`follow`: a
plain loop in the process's main thread over its own ``sqlite3``
connection, with no event loop and no other thread, so its GIL is its own.
Each turn applies up to ``chunk`` events past the lowest checkpoint in one
transaction (``Projector.step``); when the views are at the head of the log
it sleeps ``idle`` seconds (``IDLE``) and looks again. Its commits use
``synchronous=NORMAL``: a power cut may lose the views' last commits, and
the projector then applies those events again from the log (the consumer
commits the log itself with ``FULL``).

* SIGTERM/SIGINT: the transaction in hand commits, then it exits.
* SIGKILL at any point: SQLite rolls the open transaction back; the next
  projector resumes from the checkpoints (nothing lost, nothing twice).
* An environmental error (database locked for longer than the busy
  timeout, disk full): logged, retried with a back-off up to 5 s; nothing
  is skipped.
* The database file deleted or replaced: it opens the file now at the path.
  A projector whose log is elsewhere (``Projector(source=...)``, a backend's
  ``LogSource``: ``METASTREAM_EVENT_LOG``) creates the views' file itself.
* ``parent``: as the consumer's child, it exits when that process is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from metastream.errors import StoreError
from metastream.eventlog.base import LogSource
from metastream.eventlog.failures import describe
from metastream.eventlog.sqlite import open_connection, set_log_location, transaction
from metastream.projections.projector import Projector

log = logging.getLogger("metastream.projector")

FOLLOW_CHUNK: Final = 5_000
"""Events per transaction while following. The views share the log's write lock: a
transaction of 5,000 events holds it ~25-35 ms, and the consumer's next append waits that
long at most. Catching up 300k events measured 137-142k events/s with 5,000, 143-153k with
20,000 (holding the lock four times longer) and 123-131k with 1,000."""
IDLE: Final = 0.05
"""Seconds between two looks at the log when the views are at its head. Following the
consumer at ~45k events/s, 5 ms made batches of ~250 events and cost the projector 7.7 µs
an event; 50 ms makes batches of ~2,000 and costs 5.2-6.2 µs (fewer transactions, each
reading an entity's current rows once), for ~25 ms more lag on average."""
MAX_BACKOFF: Final = 5.0
REPORT_INTERVAL: Final = 30.0
"""Seconds between two progress lines in the log."""


@dataclass
class FollowStats:
    applied: int = 0
    transactions: int = 0
    errors: int = 0
    since: float = field(default_factory=time.monotonic)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def follow(
    path: str | Path,
    *,
    stop: threading.Event | None = None,
    chunk: int = FOLLOW_CHUNK,
    idle: float = IDLE,
    parent: int | None = None,
    projector: Projector | None = None,
    until: Callable[[], bool] | None = None,
    log_at: str | None = None,
) -> FollowStats:
    """Keep the views of the database at ``path`` up to date until ``stop`` is set.

    ``until`` (for benchmarks and tests): also stop once it returns true
    after a turn that found nothing to apply. ``log_at``: where the
    projector's log is (a masked URL) when it is not in the file; recorded
    in the file, so that readers refuse what needs the log
    (:class:`~metastream.errors.LogElsewhere`) instead of finding nothing.
    """
    path = Path(path)
    stop = stop or threading.Event()
    projector = projector or Projector()
    stats = FollowStats()
    conn: sqlite3.Connection | None = None
    opened: tuple[int, int] | None = None
    backoff = 0.1
    reported = time.monotonic()
    try:
        while not stop.is_set():
            if parent is not None and os.getppid() != parent:  # every turn, busy or not
                log.warning("projector: the consumer that started it is gone; exiting")
                break
            try:
                if conn is None:
                    # Not created yet, or deleted: the consumer creates the file that holds the
                    # log; only views of a log elsewhere (``source``) begin a file here.
                    if projector.source is None and not path.exists():
                        stop.wait(idle * 20)
                        continue
                    conn = open_connection(path, synchronous="NORMAL")
                    opened = _identity(path)
                    projector.prepare(conn)
                    with transaction(conn):
                        set_log_location(conn, log_at)
                    log.info("projector (pid %d): following %s", os.getpid(), path)
                read, _ = projector.step(conn, chunk)
            except (StoreError, sqlite3.Error, OSError) as exc:
                stats.errors += 1
                log.error("projector: %s; retrying in %.1f s", describe(exc), backoff)
                if conn is not None and not isinstance(exc, sqlite3.OperationalError):
                    conn.close()
                    conn = None
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.1
            if read:
                stats.applied += read
                stats.transactions += 1
            else:
                if until is not None and until():
                    break
                if _identity(path) != opened:
                    log.warning("projector: %s was deleted or replaced; opening it again", path)
                    conn.close()
                    conn = None
                    projector.forget()
                stop.wait(idle)
            now = time.monotonic()
            if now - reported >= REPORT_INTERVAL and stats.applied:
                reported = now
                log.info(
                    "projector: %d events applied in %d transactions",
                    stats.applied,
                    stats.transactions,
                )
    finally:
        if conn is not None:
            conn.close()
    return stats


def run(
    path: str | Path,
    *,
    parent: int | None = None,
    source: LogSource | None = None,
    log_at: str | None = None,
) -> FollowStats:
    """Follow until SIGTERM or SIGINT (``metastream project``).

    ``source``: the log to follow when it is not the one in the file at
    ``path`` (a backend's, ``eventlog.open_log_source``), found at ``log_at``.
    """
    stop = threading.Event()

    def stopping(signum: int, _frame: object) -> None:
        log.info("projector: %s, stopping after this transaction", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    return follow(path, stop=stop, parent=parent, projector=Projector(source=source), log_at=log_at)
