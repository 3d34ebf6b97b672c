"""The process-wide producer that ``log_metadata`` and friends publish through."""

from __future__ import annotations

import os
import threading

from metastream.config import Settings
from metastream.producer import producer as _producer_module
from metastream.producer.producer import Producer

_default: Producer | None = None
_lock = threading.Lock()


def get_producer() -> Producer:
    """The process-wide producer, created on first use from ``Settings.from_env()``.

    A forked child gets its own on first use (the parent's is never shared).
    Once the process-wide producer is closed, a new one is made, except while
    the interpreter exits: then the closed one is kept, and spools directly.
    """
    global _default
    found = _default
    if found is not None and not found.closed:
        return found
    with _lock:
        found = _default
        if found is None or (found.closed and not _producer_module.exiting()):
            settings = Settings.from_env()
            found = _default = Producer(settings, exit_timeout=settings.exit_timeout)
        return found


def flush(timeout: float | None = None) -> bool:
    """Flush the process-wide producer, if there is one (see ``Producer.flush``)."""
    found = _default
    return True if found is None else found.flush(timeout)


def _forget_in_child() -> None:
    global _default, _lock
    _default = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
