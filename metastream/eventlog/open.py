"""Opening the event log the settings name: the SQLite file, or a backend registered by scheme.

``await open_event_log(settings)`` is how the consumer opens its log:

* ``settings.event_log`` unset (``METASTREAM_EVENT_LOG``, the default): the
  SQLite log in the database file ``settings.db``, the file that also holds
  the views, opened as the consumer has always run it: its SQL in the event
  loop's own thread (``inline=True``, measured faster: see "The database's
  thread" in ``consumer/app.py``), the file's identity recorded for
  ``EventLog.problem``.
* ``settings.event_log`` a URL (``postgresql://user:PASSWORD@host/db``): the
  backend registered for its scheme opens it. ``settings.db`` stays a path:
  the URL has a setting of its own rather than a second meaning for the
  database file, which the projector, the readers and the API still open as
  SQLite.

A backend is ``opener(url, settings)``, awaited, returning an open
:class:`~metastream.eventlog.base.EventLog`. It is registered with
:func:`register_backend` (a package that provides one calls it when
imported), or found without any import of it by the consumer through the
``metastream.event_log_backends`` entry point group: an entry point named
after the scheme whose object is the opener. A URL whose scheme has no
backend is a :class:`~metastream.errors.StoreError` naming the known ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Final
from urllib.parse import urlsplit

from metastream.config import Settings
from metastream.errors import StoreError
from metastream.eventlog.base import EventLog
from metastream.eventlog.sqlite import SqliteEventLog
from metastream.urls import mask_url

Opener = Callable[[str, Settings], Awaitable[EventLog]]
"""``opener(url, settings)``: the event log at ``url``, open."""

ENTRY_POINTS: Final = "metastream.event_log_backends"
"""The entry point group where installed packages name their backends (by scheme)."""
SETTING: Final = "METASTREAM_EVENT_LOG"

_backends: dict[str, Opener] = {}


def register_backend(scheme: str, opener: Opener) -> None:
    """Open URLs of ``scheme`` (``postgresql``) with ``opener``; replaces an earlier one."""
    _backends[scheme.lower()] = opener


def unregister_backend(scheme: str) -> None:
    """Forget the backend of ``scheme`` (tests); nothing if there is none."""
    _backends.pop(scheme.lower(), None)


def backends() -> list[str]:
    """The schemes a backend is known for: registered, or named by an installed entry point."""
    installed = {ep.name.lower() for ep in entry_points(group=ENTRY_POINTS)}
    return sorted(installed | set(_backends))


def _backend(scheme: str) -> Opener | None:
    opener = _backends.get(scheme)
    if opener is None:
        for ep in entry_points(group=ENTRY_POINTS):
            if ep.name.lower() == scheme:
                opener = ep.load()
                register_backend(scheme, opener)
                break
    return opener


async def open_event_log(settings: Settings) -> EventLog:
    """The event log ``settings`` name, open (see the module docstring)."""
    url = settings.event_log
    if not url:
        return await SqliteEventLog.open(settings.db, inline=True)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise StoreError(
            f"{SETTING} is not a URL (scheme://...); leave it unset for the SQLite log in "
            f"{settings.db}"
        )
    opener = _backend(scheme)
    if opener is None:
        known = ", ".join(backends()) or "none is installed"
        raise StoreError(
            f"no event log backend for {scheme}:// ({SETTING}={mask_url(url)}); known "
            f"schemes: {known}. Leave {SETTING} unset for the SQLite log in {settings.db}"
        )
    return await opener(url, settings)
