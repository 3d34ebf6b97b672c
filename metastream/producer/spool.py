"""The local spool: events that could not be sent yet, in files that survive a crash.

The format of a file is in ``records.py``. Records are appended with
``write()`` and no user-space buffer, so what a killed process wrote is in
the kernel and is read back by the next producer. While a file is resent,
the offset in its header moves forward after each batch Redis acknowledged,
so a producer that stops half way (a short script exiting) leaves the rest
to the next one, which goes on from there instead of sending everything
again.

Ownership: each producer writes its own file and holds an exclusive
``fcntl.flock`` on it for as long as the file may still change or is being
resent. A file nobody holds a lock on is an orphan (its producer exited or
died) and any producer may claim it. A file is created under a ``.tmp`` name,
locked, and only then renamed to ``.spool``, so a claimer never sees a
``.spool`` file before its owner holds the lock. File names start with the
creation time in nanoseconds, so sorting them gives the order they were
written in.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from metastream.private_files import make_private_dir
from metastream.producer.records import (
    FILE_HEADER,
    FIRST_RECORD,
    MAGIC,
    OFFSET,
    encode_records,
    iter_records,
    unacknowledged_offset,
)

logger = logging.getLogger(__name__)

SUFFIX: Final = ".spool"
TMP_SUFFIX: Final = ".tmp"
SEGMENT_SUFFIX: Final = ".segment"
"""A memory-mapped segment (``segments.py``): a spool file with a zeroed tail, locked by the
producer that writes it; one whose producer died is claimed and sent like a spool file."""
CORRUPT_SUFFIX: Final = ".corrupt"
"""A file that does not start with ``MAGIC`` is renamed to this, kept for inspection."""


class SpoolError(OSError):
    """Writing the spool failed (disk full, no permission, ...)."""


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SpoolFile:
    """One spool file held open and locked: ours, or an orphan we claimed.

    ``offset`` is where the next unsent record starts; it only moves forward
    when Redis acknowledged the records before it (``commit``), and is kept
    in the file's header for whoever resends the file after us.
    """

    def __init__(
        self, path: Path, fd: int, *, own: bool, records: int | None, offset: int = FIRST_RECORD
    ) -> None:
        self.path = path
        self.fd = fd
        self.own = own
        self.records = records  # how many records it holds, when we wrote them ourselves
        self.offset = offset
        self.corrupt = False  # some bytes could not be read: keep the file when done
        self.set_aside = 0  # records Redis would not take, moved to a .failed file

    def read(self, max_events: int, max_bytes: int) -> tuple[list[bytes], int]:
        """Up to ``max_events`` records (about ``max_bytes``) from ``offset``, and their end."""
        end = os.fstat(self.fd).st_size
        bodies: list[bytes] = []
        size = 0
        last = self.offset
        records = iter_records(self.fd, self.offset, end, self.path.name, self._mark_corrupt)
        for body, last in records:  # noqa: B007
            bodies.append(body)
            size += len(body)
            if len(bodies) >= max_events or size >= max_bytes:
                break
        else:
            last = end  # a torn tail that was skipped counts as read
        return bodies, last

    def _mark_corrupt(self) -> None:
        self.corrupt = True

    def commit(self, offset: int) -> None:
        """Everything before ``offset`` is in Redis: never send it again."""
        self.offset = offset
        try:
            os.pwrite(self.fd, OFFSET.pack(offset), len(MAGIC))
        except OSError:  # only costs duplicates if another producer resends the file
            pass

    @property
    def done(self) -> bool:
        return self.offset >= os.fstat(self.fd).st_size

    def remove(self) -> None:
        """Delete the file (its events were acknowledged), then let go of the lock.

        A file with corrupted bytes in it is renamed to ``.corrupt`` instead,
        so that what could not be read is still there to look at.
        """
        try:
            if self.corrupt:
                kept = self.path.with_suffix(CORRUPT_SUFFIX)
                os.rename(self.path, kept)
                logger.warning("spool %s had corrupted records; kept as %s", self.path, kept.name)
            else:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # sent already: at worst it is sent again by someone
            logger.error("spool %s was sent but cannot be removed: %s", self.path, exc)
        self.release()

    def release(self) -> None:
        """Close the file and so release the lock; the file stays for another producer."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __repr__(self) -> str:
        return f"SpoolFile({self.path.name!r}, offset={self.offset}, own={self.own})"


class SpoolWriter:
    """Appends records to this producer's own spool file, creating it when first needed.

    Used by the producer's background threads (and by ``close()``); callers of
    ``publish()`` never write here while the producer runs. ``lock`` is held
    for one append, never across a network call.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.written = 0  # records appended by this writer, ever
        self._file: SpoolFile | None = None
        self._size = 0

    @property
    def path(self) -> Path | None:
        """The current file, if one was created and not rotated away yet."""
        return self._file.path if self._file else None

    def append(self, bodies: list[bytes]) -> SpoolFile:
        """Write and sync ``bodies`` as records; on failure ``SpoolError``, and nothing written.

        ``fdatasync`` makes them survive a machine crash too, not only a
        process crash; it costs a background thread (or ``close()``) a disk
        flush per batch, never a caller of ``publish()``.
        """
        data = encode_records(bodies)
        with self.lock:
            try:
                file = self._file or self._create()
            except OSError as exc:
                raise SpoolError(f"cannot create a spool file in {self.directory}: {exc}") from exc
            try:
                write_all(file.fd, data)
                os.fdatasync(file.fd)
            except OSError as exc:
                try:  # never leave half a batch behind: it would read as a corrupted record
                    os.ftruncate(file.fd, self._size)
                    os.lseek(file.fd, self._size, os.SEEK_SET)
                except OSError:
                    pass
                raise SpoolError(f"cannot write to {file.path}: {exc}") from exc
            self._size += len(data)
            file.records = (file.records or 0) + len(bodies)
            self.written += len(bodies)
            return file

    def rotate(self) -> SpoolFile | None:
        """Hand over the current file, still locked, to be resent; the next append starts anew."""
        with self.lock:
            file, self._file = self._file, None
        if file is not None and not file.records:
            file.remove()
            return None
        return file

    def close(self) -> None:
        """Release the current file; it stays on disk when it holds records."""
        with self.lock:
            file, self._file = self._file, None
        if file is not None:
            if file.records:
                file.release()
            else:
                file.remove()

    def abandon(self) -> None:
        """In a forked child: close our copy of the parent's descriptor, keep the parent's lock."""
        file, self._file = self._file, None
        self.lock = threading.Lock()
        if file is not None:
            os.close(file.fd)

    def _create(self) -> SpoolFile:
        final, fd = create_locked_file(self.directory, SUFFIX)
        self._size = FIRST_RECORD
        self._file = SpoolFile(final, fd, own=True, records=0)
        return self._file


def create_locked_file(directory: Path, suffix: str, size: int = 0) -> tuple[Path, int]:
    """A new spool-format file ``<time_ns>-<pid>-<random><suffix>``, open and locked by us.

    It is created under a ``.tmp`` name, locked, given its header (and, with
    ``size``, reserved at that size with ``posix_fallocate`` and so zeroed),
    and only then renamed: a claimer never sees it before it is locked.
    ``OSError`` when the directory or the disk refuses.
    """
    make_private_dir(directory)  # and a home created on the way: 0700 too
    for _ in range(10):
        stem = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = directory / (stem + TMP_SUFFIX)
        final = directory / (stem + suffix)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # we are its only writer
        fd = os.open(tmp, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            write_all(fd, FILE_HEADER.pack(MAGIC, FIRST_RECORD))
            if size:
                os.posix_fallocate(fd, 0, size)
            os.rename(tmp, final)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)  # a claimer took our .tmp for a stale one: try another name
            continue
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        _sync_directory(directory)
        return final, fd
    raise OSError(f"could not create a spool file in {directory}")


_CLAIMABLE: Final = (SUFFIX, SEGMENT_SUFFIX, TMP_SUFFIX)


def has_spool_files(directory: Path) -> bool:
    """Whether ``directory`` holds any spool file (one listing; no file is opened)."""
    try:
        with os.scandir(directory) as entries:
            return any(entry.name.endswith(SUFFIX) for entry in entries)
    except OSError:
        return False


def claim_orphans(directory: Path, skip: Iterable[Path] = ()) -> list[SpoolFile]:
    """Lock and return the spool files in ``directory`` that no live producer holds, oldest first.

    Segments (``.segment``) whose producer died are spool files too. Stale
    ``.tmp`` files (a producer died while creating its file, before any
    record) are deleted; a file that is not a spool file is renamed to
    ``.corrupt`` with a warning.
    """
    try:
        paths = sorted(
            (p for p in directory.iterdir() if p.suffix in _CLAIMABLE), key=lambda p: p.name
        )
    except FileNotFoundError:
        return []
    skipped = set(skip)
    claimed: list[SpoolFile] = []
    for path in paths:
        if path in skipped:
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # RDWR: to move its offset on
        except (FileNotFoundError, PermissionError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its producer is alive
            os.close(fd)
            continue
        try:  # the file we locked may have been resent and deleted by another claimer
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
        elif path.suffix == TMP_SUFFIX:
            _unlink_quietly(path)
            os.close(fd)
        elif (offset := unacknowledged_offset(fd)) is None:
            bad = path.with_suffix(CORRUPT_SUFFIX)
            logger.warning("spool %s is not a metastream spool file; renamed to %s", path, bad.name)
            os.rename(path, bad)
            os.close(fd)
        else:
            claimed.append(SpoolFile(path, fd, own=False, records=None, offset=offset))
    return claimed


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable, not only its data (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
