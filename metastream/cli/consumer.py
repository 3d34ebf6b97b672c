"""``metastream consume``: run a consumer in this process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from metastream import config
from metastream.cli.common import add_log_level, configure_logging, run_alone
from metastream.cli.common import settings as settings_of
from metastream.errors import MetastreamError, NotRunning
from metastream.urls import connection_problem, is_auth_failure, scrub


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "consume",
        help="move events from the Redis stream into the event log (runs until stopped)",
        description=(
            "Consume the stream into the SQLite event log and views. Several consumers "
            "may run at once (one consumer group, one name per process). Redis comes "
            "from METASTREAM_REDIS_URL, else from the local stack (`metastream up`)."
        ),
    )
    add_log_level(parser)
    parser.set_defaults(handler=consume)


def consume(args: argparse.Namespace) -> int:
    from metastream.consumer import run

    configure_logging(args.log_level)
    settings = settings_of(args)
    try:
        run(settings)
    except MetastreamError as exc:
        raise _explained(exc, config.redis_url(settings)) from None
    return 0


def _explained(exc: MetastreamError, url: str | None) -> MetastreamError:
    """``exc`` as the user should read it: no password in it, an auth failure said as such."""
    if url is not None and is_auth_failure(exc):
        return NotRunning(connection_problem(exc, url))
    message = scrub(str(exc), url)
    if message == str(exc):
        return exc
    return NotRunning(message) if isinstance(exc, NotRunning) else MetastreamError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metastream.consumer``: ``consume`` without the rest of the CLI."""
    return run_alone("python -m metastream.consumer", add_log_level, consume, argv)
