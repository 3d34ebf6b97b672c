"""Memory-mapped spool segments: an event is in a file before ``publish`` returns.

A segment is a spool file (the format is in ``records.py``) created at its
full size and mapped into memory. ``publish`` copies each record into the
mapping: two memory copies, no system call (~0.65 µs a call in ``metastream
bench producer``, docs/performance.md). The mapped pages are the kernel's
page cache, so when the process is killed (SIGKILL, the OOM killer) what it
copied is still written to the file; only a crash of the machine itself can
lose it (use the spool's fsync for that: events that wait for Redis go to a
spool file, synced, as before).

* **Reserved, never sparse.** The file is reserved with ``posix_fallocate``:
  writing into a mapped page the file system cannot back (a full disk) is a
  SIGBUS, which would kill the process we are protecting. The tail past the
  last record stays zeroed, and a reader stops at an all-zero record header.
* **Written body first.** The body is copied before its header, so a record
  whose header is there is whole; a killed process leaves no torn record.
* **Acknowledged prefix.** The header's offset (as in every spool file) is
  the end of the records that are *settled*: acknowledged by Redis, or
  written to a spool file. The sender moves it forward (a memory write) as
  batches settle, in publishing order.
* **Rotation.** When a record does not fit, the segment is sealed and the
  next one, created and faulted in ahead of time by the sender thread, takes
  over. A sealed segment whose records are all settled is deleted.
* **Ownership.** A producer holds an exclusive ``flock`` on its segments,
  whose names end in ``.segment``. A killed process releases the lock, and
  its segments become orphans that ``claim_orphans`` resends like any spool
  file (the stack's drainer does it, or any producer). At ``close()`` a
  segment whose records are all settled is deleted; one that still holds
  unsettled records is cut to its written size, synced, and renamed to
  ``.spool``: the events queued at exit are then in the spool without being
  written a second time.
* **fork.** A child must never write into its parent's mapping: the
  producer's after-fork hook calls ``abandon()``, which unmaps the child's
  copy without touching the files, and the child starts segments of its own.

When no segment can be created (no permission, a full disk), the producer
keeps working from memory only and says once, at WARNING, that a killed
process would lose its queued events.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from collections import deque
from pathlib import Path
from typing import Final

from metastream.producer.records import FIRST_RECORD, HEADER, MAGIC, OFFSET
from metastream.producer.spool import SEGMENT_SUFFIX, SUFFIX, create_locked_file

logger = logging.getLogger("metastream.producer")

SEGMENT_BYTES: Final = 4 * 1024 * 1024
"""The size of a segment: ~27,000 events of 150 bytes. Each producer holds one, and one
more made ahead of time, so this is what a process costs on disk at least; larger
segments would rotate less often, but rotating is a pointer swap for the caller."""
_MADV_POPULATE_WRITE: Final = 23
"""Linux 5.14+: fault the pages in for writing without changing them (not in Python 3.11's
``mmap``). A first write to each 4 KiB page otherwise costs the caller a page fault: p99
of the copy 3.9 µs without, 0.9 µs with, measured here."""
_POPULATE_STEP: Final = 256 * 1024
_pack_header = HEADER.pack_into
_pack_offset = OFFSET.pack_into


class Segment:
    """One mapped segment file. ``end`` and ``count`` move under the queue's put lock."""

    __slots__ = (
        "count",
        "end",
        "fd",
        "mm",
        "path",
        "populated",
        "sealed",
        "settled",
        "settled_count",
        "size",
    )

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, size: int) -> None:
        self.path = path
        self.fd = fd
        self.mm = mm
        self.size = size
        self.end = FIRST_RECORD  # where the next record goes
        self.count = 0  # records written
        self.settled = FIRST_RECORD  # the end of the settled prefix (as in the header)
        self.settled_count = 0
        self.sealed = False  # no record is ever added again
        self.populated = False

    @classmethod
    def create(cls, directory: Path, size: int) -> Segment:
        path, fd = create_locked_file(directory, SEGMENT_SUFFIX, size)
        try:
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return cls(path, fd, mm, size)

    def populate(self) -> None:
        """Fault in the pages not written yet, a step at a time (from a background thread)."""
        start = (self.end // mmap.PAGESIZE) * mmap.PAGESIZE
        try:
            for offset in range(start, self.size, _POPULATE_STEP):
                if self.mm.closed:
                    return
                self.mm.madvise(
                    _MADV_POPULATE_WRITE, offset, min(_POPULATE_STEP, self.size - offset)
                )
        except (OSError, ValueError):  # an older kernel: each first write faults instead
            pass
        self.populated = True

    def settle(self, records: int, nbytes: int) -> None:
        """The next ``records`` records (``nbytes`` with their headers) are settled."""
        self.settled += nbytes
        self.settled_count += records
        if not self.mm.closed:
            _pack_offset(self.mm, len(MAGIC), self.settled)

    @property
    def complete(self) -> bool:
        """Sealed, and every record in it settled."""
        return self.sealed and self.settled >= self.end

    def remove(self) -> None:
        """Unmap, delete and unlock."""
        self.mm.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # at worst its records are sent again by someone
            logger.error("metastream: cannot delete the settled segment %s: %s", self.path, exc)
        os.close(self.fd)

    def keep_as_spool(self) -> Path:
        """Unmap, cut to the written size, sync, rename to ``.spool`` and unlock."""
        self.mm.flush()
        self.mm.close()
        path = self.path
        try:
            os.ftruncate(self.fd, self.end)
            os.fdatasync(self.fd)
            path = self.path.with_suffix(SUFFIX)
            os.rename(self.path, path)
        except OSError as exc:  # still a valid segment: sent by whoever claims it
            logger.error("metastream: cannot turn segment %s into a spool file: %s", path, exc)
        os.close(self.fd)
        return path


class Segments:
    """This producer's segments, oldest first; the last one is written by ``publish``.

    ``write`` runs on the callers' threads under the queue's put lock;
    ``settle`` under the queue's condition (in publishing order); ``prepare``
    on the sender thread. ``journaled`` counts the events written to
    segments: once a segment cannot be made, no later event is written to
    one, so the first ``journaled`` events are exactly those in segments.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.active: Segment | None = None
        self.live: deque[Segment] = deque()  # not deleted yet, oldest first; active is last
        self.journaled = 0
        self.broken = False  # a segment could not be made: memory only from here on
        self.closed = False
        self._next: Segment | None = None
        self._next_lock = threading.Lock()  # the sender and a rotating caller may both make one

    def write_slow(self, body: bytes, crc: int) -> bool:
        """Write ``body`` when the active segment cannot take it (or there is none yet)."""
        if self.broken or self.closed:
            return False
        need = FIRST_RECORD + HEADER.size + len(body)
        active = self.active
        if active is not None:
            active.sealed = True
        with self._next_lock:
            found, self._next = self._next, None
        if found is None or found.size < need:
            if found is not None:
                found.remove()
            try:
                found = Segment.create(self.directory, max(self.segment_bytes, need))
            except (OSError, ValueError) as exc:
                self._break(exc)
                return False
        self.active = found
        self.live.append(found)
        mm, pos = found.mm, found.end
        end = pos + HEADER.size + len(body)
        mm[pos + HEADER.size : end] = body
        _pack_header(mm, pos, len(body), crc)
        found.end = end
        found.count = 1
        self.journaled += 1
        return True

    def _break(self, exc: BaseException) -> None:
        self.broken = True
        self.active = None
        logger.warning(
            "metastream: cannot create a spool segment in %s (%s); events are kept in memory "
            "until they are sent, so a process killed now (SIGKILL, the OOM killer) would "
            "lose those not sent yet",
            self.directory,
            exc,
        )

    def settle(self, bodies: list[bytes]) -> list[Segment]:
        """The next ``len(bodies)`` journaled records are settled; the segments now finished.

        Call in publishing order; delete what is returned outside any lock.
        """
        finished: list[Segment] = []
        live = self.live
        i, n = 0, len(bodies)
        while i < n and live:
            segment = live[0]
            take = min(n - i, segment.count - segment.settled_count)
            if take > 0:
                nbytes = sum(map(len, bodies[i : i + take])) + HEADER.size * take
                segment.settle(take, nbytes)
                i += take
            if segment.complete:
                finished.append(live.popleft())
            elif take <= 0:
                break
        while live and live[0].complete:  # sealed by a caller after its last settle
            finished.append(live.popleft())
        return finished

    def prepare(self) -> None:
        """Fault in the active segment, and make the next one when the active is half full."""
        if self.broken or self.closed:
            return
        active = self.active
        if active is not None and not active.populated:
            active.populate()
        if self._next is None and active is not None and active.end * 2 >= active.size:
            try:
                made = Segment.create(self.directory, self.segment_bytes)
            except (OSError, ValueError):
                return  # the caller that needs it will try, and say so if it fails
            made.populate()
            with self._next_lock:
                if self._next is None and not self.closed:
                    self._next, made = made, None  # type: ignore[assignment]
            if made is not None:
                made.remove()

    def close(self) -> list[Path]:
        """Delete settled segments, keep the others as spool files; the paths kept."""
        self.closed = True
        kept: list[Path] = []
        with self._next_lock:
            found, self._next = self._next, None
        if found is not None:
            found.remove()
        while self.live:
            segment = self.live.popleft()
            if segment.settled >= segment.end:
                segment.remove()
            else:
                kept.append(segment.keep_as_spool())
        self.active = None
        return kept

    def abandon(self) -> None:
        """In a forked child: unmap and close our copies; the files and locks stay the parent's."""
        self.closed = True
        segments = list(self.live)
        if self._next is not None:
            segments.append(self._next)
        self.live.clear()
        self.active = self._next = None
        self._next_lock = threading.Lock()
        for segment in segments:
            segment.mm.close()
            os.close(segment.fd)
