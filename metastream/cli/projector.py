"""``metastream project``: run the projector (the views follow the event log) until stopped."""

from __future__ import annotations

import argparse
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from metastream.cli.common import add_log_level, configure_logging, echo, run_alone
from metastream.cli.common import settings as settings_of


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "project",
        help="keep the views up to date with the event log (runs until stopped)",
        description=(
            "Follow the event log and apply it to the views, a batch per transaction, from "
            "their checkpoints. `metastream up` runs one; so does `metastream consume`, as "
            "its child, unless METASTREAM_PROJECTOR=0. Several may run at once."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=project)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_log_level(parser)
    parser.add_argument(
        "--quarantined",
        action="store_true",
        help="list the events a projection could not apply (and skipped), then exit",
    )
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)


def project(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.quarantined:
        return _list_quarantined(settings.db)
    from metastream.eventlog import open_log_source
    from metastream.projections.follow import run
    from metastream.urls import mask_url

    configure_logging(args.log_level)
    source = open_log_source(settings)  # None: the log in the database file itself
    try:
        where = mask_url(settings.event_log) if settings.event_log else None
        run(settings.db, parent=args.parent, source=source, log_at=where)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return 0


def _list_quarantined(db: Any) -> int:
    from metastream.eventlog.sqlite import open_connection
    from metastream.projections.projector import quarantined

    conn = open_connection(db, readonly=True)
    try:
        try:
            found = quarantined(conn)
        except sqlite3.OperationalError:  # no views yet
            found = []
    finally:
        conn.close()
    if not found:
        echo("no event was quarantined")
        return 0
    for q in found:
        event_id = uuid.UUID(bytes=bytes(q.event_id))
        echo(f"position {q.position}  event {event_id}  {q.projection}: {q.reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metastream.projections``: ``project`` without the rest of the CLI."""
    return run_alone("python -m metastream.projections", add_arguments, project, argv)
