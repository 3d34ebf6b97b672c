"""The stack's spool drainer: sends the spool files and segments that processes left behind.

A process that exits while Redis is down leaves its events in a spool file;
one killed by SIGKILL leaves them in its segments. Nobody holds a lock on
those files any more, and the drainer, run by the local stack's consumer
process, claims them (``claim_orphans``) and sends them to the stream,
oldest first, committing each file's offset after every batch Redis
acknowledged, so a drainer stopped half way leaves the rest to the next.
It does not wait for another producer process to start.

What Redis will not take is set aside after retries (``resend.py``,
``setaside.py``) and never blocks the files behind it. While Redis cannot be
reached the drainer waits, with a growing pause, and tries again.

::

    drainer = SpoolDrainer(settings.spool_dir, redis_url, settings.stream)
    drainer.start()        # a daemon thread; returns at once
    ...
    drainer.stop()         # at shutdown: stops within ~1 s, files stay for later

``drain_once()`` does one pass on the calling thread (for tests and tools).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Final

from metastream.producer.resend import Resender
from metastream.producer.spool import SpoolFile, claim_orphans
from metastream.producer.transport import Transport, TransportError
from metastream.urls import mask_url

logger = logging.getLogger("metastream.producer.drain")

SCAN_INTERVAL: Final = 1.0
"""Seconds between looks at the spool directory while there is nothing to send."""
MAX_PAUSE: Final = 10.0
"""The longest pause between attempts while Redis cannot be reached."""
BATCH_EVENTS: Final = 5_000
BATCH_BYTES: Final = 1024 * 1024


class SpoolDrainer:
    """Sends orphaned spool files and segments in ``spool_dir`` to ``stream`` at ``redis_url``."""

    def __init__(
        self, spool_dir: Path, redis_url: str, stream: str, *, interval: float = SCAN_INTERVAL
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.redis_url = redis_url
        self.stream = stream
        self.interval = interval
        self.sent = 0  # events acknowledged by Redis, ever
        self.files_done = 0  # files sent in full and deleted
        self.transport = Transport(stream)
        self.resender = Resender(self.transport, self._reconnect)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    @property
    def set_aside(self) -> int:
        """Events set aside so far (Redis would not take them)."""
        return self.resender.set_aside

    def start(self) -> None:
        """Start the drainer's daemon thread (once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metastream-drainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; whether it stopped within ``timeout``. Unsent files stay."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
        self.transport.close()
        return True

    def drain_once(self) -> int:
        """Claim the orphaned files and send them, oldest first; events sent in this pass.

        ``TransportError`` when Redis cannot be reached (every claimed file is
        released untouched past its last commit).
        """
        files = claim_orphans(self.spool_dir)
        if not files:
            return 0
        sent = 0
        try:
            if not self.transport.connected and not self._reconnect():
                raise TransportError(f"cannot connect to Redis at {mask_url(self.redis_url)}")
            while files:
                if self._stop.is_set():
                    break
                file = files[0]
                try:
                    sent += self._send_file(file)
                except OSError as exc:  # unreadable now: tried again at the next pass
                    logger.error("metastream: cannot read spool %s (%s)", file.path, exc)
                    file.release()
                files.pop(0)
        finally:
            for file in files:
                file.release()
        return sent

    def _send_file(self, file: SpoolFile) -> int:
        sent = 0
        while not file.done:
            if self._stop.is_set():
                file.release()
                return sent
            batch = self.resender.send_some(file, BATCH_EVENTS, BATCH_BYTES)
            sent += batch
            self.sent += batch  # counted as acknowledged, even if the file is left half way
        self.files_done += 1
        file.remove()
        if sent:
            logger.info("metastream: sent %d spooled events from %s", sent, file.path.name)
        return sent

    def _reconnect(self) -> bool:
        return self.transport.try_connect(self.redis_url)

    def _run(self) -> None:
        pause = self.interval
        while not self._stop.is_set():
            try:
                self.drain_once()
            except TransportError as exc:
                self.transport.close()
                if not self._warned:
                    self._warned = True
                    logger.warning("metastream: the spool drainer cannot send (%s); retrying", exc)
                pause = min(MAX_PAUSE, pause * 2)
            except Exception:  # a bug must not end the thread: spool files would wait unseen
                logger.exception("metastream: unexpected error in the spool drainer")
                pause = min(MAX_PAUSE, pause * 2)
            else:
                pause = self.interval
                self._warned = False
            self._stop.wait(pause)
