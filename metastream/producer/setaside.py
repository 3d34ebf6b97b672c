"""Spooled events Redis would not take: set aside, with the reason, so they block nothing.

Spool files are resent oldest first. An event that can never be sent (one
larger than the server's ``proto-max-bulk-len``, a stream key of the wrong
type, ...) would otherwise be retried forever and hold back every file
behind it. The resender (``resend.py``) narrows a failing batch down to the
event(s) at fault and, after ``RETRIES`` failures of one event while Redis
answers otherwise, writes it to a file of its own:

    <spool file's stem>-<offset>.failed    a spool file holding the event(s)
    <spool file's stem>-<offset>.reason    JSON: reason, when, source, events

then moves on. The reason is logged at WARNING. ``metastream spool list``
shows these files and ``metastream spool retry`` renames one back to
``.spool`` (``put_back``), so it is sent again, e.g. once the server's limit
is raised.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from metastream.producer.records import FILE_HEADER, FIRST_RECORD, MAGIC, encode_records, read_spool
from metastream.producer.spool import SUFFIX, write_all

logger = logging.getLogger("metastream.producer")

FAILED_SUFFIX: Final = ".failed"
REASON_SUFFIX: Final = ".reason"


@dataclass(frozen=True)
class SetAsideFile:
    """A file of events set aside: where, why, how many, since when."""

    path: Path
    reason: str
    events: int
    set_aside_at: float
    source: str

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.set_aside_at)


def set_aside(source: Path, offset: int, bodies: list[bytes], reason: str) -> Path:
    """Write ``bodies`` (read at ``offset`` of spool file ``source``) to a ``.failed`` file.

    The reason is written first and the file renamed into place last, so a
    listing never sees a ``.failed`` file without its reason. ``OSError``
    when the directory refuses.
    """
    directory = source.parent
    stem = f"{source.stem}-{offset:012d}"
    path = directory / (stem + FAILED_SUFFIX)
    reason_path = directory / (stem + REASON_SUFFIX)
    record = {
        "reason": reason,
        "set_aside_at": time.time(),
        "source": source.name,
        "offset": offset,
        "events": len(bodies),
    }
    _write_file(reason_path, json.dumps(record, indent=2).encode() + b"\n")
    _write_file(path, FILE_HEADER.pack(MAGIC, FIRST_RECORD) + encode_records(bodies))
    logger.warning(
        "metastream: %d event(s) of spool %s could not be sent (%s); set aside as %s "
        "(`metastream spool list`, `metastream spool retry`)",
        len(bodies),
        source.name,
        reason,
        path.name,
    )
    return path


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp-write")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def set_aside_files(directory: Path) -> list[SetAsideFile]:
    """The files set aside in ``directory``, oldest first."""
    try:
        paths = sorted(directory.glob(f"*{FAILED_SUFFIX}"))
    except OSError:
        return []
    found: list[SetAsideFile] = []
    for path in paths:
        info = _reason_of(path)
        try:
            events = len(read_spool(path))
        except (OSError, ValueError):
            events = 0
        try:
            when = float(str(info.get("set_aside_at") or path.stat().st_mtime))
        except (OSError, TypeError, ValueError):
            when = time.time()
        found.append(
            SetAsideFile(
                path=path,
                reason=str(info.get("reason") or "(no reason recorded)"),
                events=events,
                set_aside_at=when,
                source=str(info.get("source") or ""),
            )
        )
    return found


def _reason_of(path: Path) -> dict[str, object]:
    try:
        info = json.loads(path.with_suffix(REASON_SUFFIX).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def put_back(path: Path) -> Path:
    """Rename a set-aside file to ``.spool`` so it is sent again; the new path.

    ``FileNotFoundError`` if ``path`` is not there; ``ValueError`` if it is
    not a set-aside file.
    """
    if path.suffix != FAILED_SUFFIX:
        raise ValueError(f"{path.name} is not a set-aside file (*{FAILED_SUFFIX})")
    if not path.exists():
        raise FileNotFoundError(f"no set-aside file {path}")
    target = path.with_suffix(SUFFIX)
    os.rename(path, target)
    try:
        os.unlink(path.with_suffix(REASON_SUFFIX))
    except FileNotFoundError:
        pass
    return target
