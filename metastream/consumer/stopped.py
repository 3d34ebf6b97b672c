"""Why the last consumer stopped by itself, kept where ``metastream status`` can show it.

A consumer that stops because something needs a person (the database was
deleted or replaced under it) says so on stderr and in its log, and writes
the reason to ``$METASTREAM_HOME/consumer.stopped`` (0600, JSON: reason,
database, pid, time). The next consumer that starts on that database
removes the file. :func:`consumer_problem` reads it without importing the
consumer's dependencies (FastStream, redis-py's asyncio client), so
``status`` stays quick.
"""

from __future__ import annotations

import json
import os
import time
from typing import Final

from metastream.config import Settings
from metastream.private_files import make_private_dir, write_private_text

STOPPED_FILE: Final = "consumer.stopped"


def record_stop(settings: Settings, reason: str) -> None:
    """Write why this consumer stopped (best effort: the log and stderr say it too)."""
    record = {"reason": reason, "db": str(settings.db), "pid": os.getpid(), "at": time.time()}
    try:
        make_private_dir(settings.home)
        write_private_text(settings.home / STOPPED_FILE, json.dumps(record) + "\n")
    except OSError:
        pass


def clear_stop(settings: Settings) -> None:
    """Forget a stop recorded for ``settings.db`` (a consumer has started on it again)."""
    if _read(settings) is not None:
        try:
            (settings.home / STOPPED_FILE).unlink()
        except OSError:
            pass


def _read(settings: Settings) -> dict[str, object] | None:
    """The stop recorded for ``settings.db``, if any (a stop on another database is not its)."""
    try:
        record = json.loads((settings.home / STOPPED_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
        return None
    return record if record.get("db") == str(settings.db) else None


def consumer_problem(settings: Settings) -> str | None:
    """Why the consumer of ``settings.db`` stopped by itself and was not restarted since.

    For ``metastream status``: one line, with when it stopped, e.g. ``"stopped
    2026-12-01 10:02:03: the database at ... was deleted while the consumer
    ran; ..."``.
    """
    record = _read(settings)
    if record is None:
        return None
    at = record.get("at")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        if isinstance(at, int | float)
        else "at an unknown time"
    )
    return f"stopped {when}: {record['reason']}"


__all__ = ["STOPPED_FILE", "clear_stop", "consumer_problem", "record_stop"]
