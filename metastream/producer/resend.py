"""Resending a spool file a batch at a time, setting aside what Redis will not take.

Shared by the producer's sender thread and the stack's drainer, so the same
rule holds in both. A batch that fails is one of two things:

* **Redis cannot be reached** (a new connection fails), or refuses writes
  whatever they hold (an error reply such as ``WRONGTYPE`` on the stream key,
  ``OOM``, ``READONLY``, ``NOPERM``: see ``SERVER_STATE_ERRORS``): nothing is
  wrong with the file. ``TransportError`` goes to the caller, which backs
  off and tries again later, from the file's last committed offset.
* **Redis answers, but not to this batch** (an error reply, or it closes the
  connection on this batch: a body over ``proto-max-bulk-len`` does that).
  The next batch read at that offset is half as long, so a few failures
  find the event at fault; one event that fails ``RETRIES`` times while
  Redis answers is set aside (``setaside.py``) and the file goes on after it.
  Nothing behind it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from metastream.producer.setaside import set_aside
from metastream.producer.spool import SpoolFile
from metastream.producer.transport import Transport, TransportError

RETRIES: Final = 3
"""Failures of one event alone, with Redis answering, before it is set aside."""
SERVER_STATE_ERRORS: Final = (
    "WRONGTYPE",
    "OOM",
    "READONLY",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "LOADING",
    "MASTERDOWN",
    "BUSY",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MISCONF",
    "NOREPLICAS",
)
"""Error replies about the server or the stream, not about the event: never set aside."""


class Resender:
    """Sends spool files through ``transport``; ``reconnect()`` says whether Redis answers.

    ``reconnect`` must open a new connection on ``transport`` and return
    whether it could.
    """

    def __init__(self, transport: Transport, reconnect: Callable[[], bool]) -> None:
        self.transport = transport
        self.reconnect = reconnect
        self.sent = 0
        self.set_aside = 0
        self._cap: int | None = None  # events per read while narrowing a failing batch down
        self._spot: tuple[str, int] | None = None  # (file, offset) of the single event failing
        self._failures = 0

    def send_some(self, file: SpoolFile, max_events: int, max_bytes: int) -> int:
        """Send the next batch of ``file`` and commit it; the number of events sent.

        ``TransportError`` when Redis cannot be reached (nothing committed);
        ``OSError`` when the file cannot be read.
        """
        limit = max_events if self._cap is None else min(self._cap, max_events)
        offset = file.offset
        bodies, end = file.read(limit, max_bytes)
        if not bodies:
            file.commit(end)
            return 0
        try:
            self.transport.send(bodies)
        except TransportError as exc:
            if exc.reply.startswith(SERVER_STATE_ERRORS):
                raise  # the stream or the server refuses everything: not this file's fault
            if not self.transport.connected and not self.reconnect():
                raise  # Redis is down: not this file's fault
            self._refused(file, offset, bodies, end, exc)
            return 0
        file.commit(end)
        self.sent += len(bodies)
        if self._cap is not None:
            self._cap *= 2
            if self._cap >= max_events:
                self._cap = None
        return len(bodies)

    def _refused(
        self, file: SpoolFile, offset: int, bodies: list[bytes], end: int, exc: TransportError
    ) -> None:
        if len(bodies) > 1:
            self._cap = max(1, len(bodies) // 2)
            return
        spot = (str(file.path), offset)
        if self._spot != spot:
            self._spot, self._failures = spot, 0
        self._failures += 1
        if self._failures < RETRIES:
            return
        set_aside(file.path, offset, bodies, str(exc))  # OSError: left to the caller
        file.commit(end)
        file.set_aside += len(bodies)
        self.set_aside += len(bodies)
        self._spot, self._failures, self._cap = None, 0, None
