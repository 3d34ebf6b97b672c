"""What waits in a spool directory, for ``metastream status`` and ``metastream spool list``.

Counted by reading the files (no lock is taken, nothing is changed): spool
files (``.spool``) and the segments of processes that are gone. The
segments of running producers are not counted: their events are on their
way, not waiting.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from metastream.producer.records import iter_records, unacknowledged_offset
from metastream.producer.setaside import FAILED_SUFFIX
from metastream.producer.spool import SEGMENT_SUFFIX, SUFFIX


@dataclass(frozen=True)
class SpoolSummary:
    """Events waiting in a spool directory to be sent, and files set aside.

    Attributes:
        files: spool files, and segments left by processes that are gone.
        events: their records not yet acknowledged by Redis.
        bytes: the size of those records.
        oldest_age_s: seconds since the oldest of those files was created
            (``None`` when there is none).
        set_aside: files set aside (Redis would not take their events).
    """

    files: int = 0
    events: int = 0
    bytes: int = 0
    oldest_age_s: float | None = None
    set_aside: int = 0


@dataclass(frozen=True)
class SpooledFile:
    """One file of events waiting to be sent."""

    path: Path
    events: int
    bytes: int
    age_s: float
    orphaned: bool  # a segment whose process is gone (a spool file is always waiting)


def spooled_files(directory: Path) -> list[SpooledFile]:
    """The files of ``directory`` holding events to send, oldest first."""
    try:
        paths = sorted(
            (p for p in directory.iterdir() if p.suffix in (SUFFIX, SEGMENT_SUFFIX)),
            key=lambda p: p.name,
        )
    except OSError:
        return []
    now = time.time()
    found: list[SpooledFile] = []
    for path in paths:
        segment = path.suffix == SEGMENT_SUFFIX
        if segment and _writer_alive(path):
            continue
        counted = _count(path)
        if counted is None:
            continue
        events, size = counted
        if segment and events == 0:
            continue  # an orphaned segment with nothing left: removed when next claimed
        found.append(SpooledFile(path, events, size, _age(path, now), segment))
    return found


def spool_summary(directory: Path) -> SpoolSummary:
    """How many events and files wait in ``directory``, the oldest's age, files set aside."""
    files = spooled_files(directory)
    try:
        set_aside = sum(1 for _ in directory.glob(f"*{FAILED_SUFFIX}"))
    except OSError:
        set_aside = 0
    return SpoolSummary(
        files=len(files),
        events=sum(f.events for f in files),
        bytes=sum(f.bytes for f in files),
        oldest_age_s=max((f.age_s for f in files), default=None),
        set_aside=set_aside,
    )


def _count(path: Path) -> tuple[int, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        start = unacknowledged_offset(fd)
        if start is None:
            return None
        events = size = 0
        for body, _ in iter_records(fd, start, os.fstat(fd).st_size, path.name):
            events += 1
            size += len(body)
        return events, size
    except OSError:
        return None
    finally:
        os.close(fd)


def _writer_alive(path: Path) -> bool:
    """Whether the process named in a segment's name (``<time>-<pid>-<hex>``) still runs."""
    try:
        pid = int(path.stem.split("-")[1])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _age(path: Path, now: float) -> float:
    """Seconds since the file was created: its name starts with the time in nanoseconds."""
    try:
        created = int(path.stem.split("-")[0]) / 1e9
    except ValueError:
        try:
            created = path.stat().st_mtime
        except OSError:
            created = now
    return max(0.0, now - created)
