"""``metastream dead-letters list`` and ``retry``: the entries the consumer gave up on."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any, Final

import redis

from metastream import config
from metastream.cli.common import echo
from metastream.cli.common import settings as settings_of
from metastream.cli.render import clip, columns, safe
from metastream.config import Settings
from metastream.durations import short_age
from metastream.errors import MetastreamError, NotRunning
from metastream.urls import connection_problem

ENTRY_ID: Final = re.compile(r"^\d+(-\d+)?$")
"""A stream entry id as Redis writes it (milliseconds-sequence); ``list`` shows them."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dead-letters",
        help="list or retry entries the consumer could not process",
        description=(
            "Entries that could not be decoded, or were delivered too often, go to the "
            "dead-letter stream with the reason and their original bytes."
        ),
    )
    commands = parser.add_subparsers(dest="dead_letters_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)

    listing = commands.add_parser("list", help="show the dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=None, help="show at most this many")
    listing.set_defaults(handler=cmd_list)

    retry = commands.add_parser(
        "retry",
        help="put dead letters back on their stream (once the cause is fixed)",
        description=(
            "Re-add each dead letter's original bytes to the stream it came from and "
            "delete it from the dead-letter stream."
        ),
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids (from `list`)")
    retry.add_argument("--all", action="store_true", help="retry every dead letter")
    retry.set_defaults(handler=cmd_retry)


def _client(settings: Settings) -> redis.Redis:
    url = config.redis_url(settings)
    if url is None:
        raise NotRunning(
            "the stack is not up: start it with `metastream up` (or set METASTREAM_REDIS_URL)"
        )
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        raise NotRunning(connection_problem(exc, url)) from exc
    return client


def cmd_list(args: argparse.Namespace) -> int:
    from metastream.consumer.dead_letters import DeadLetter, iter_dead_letters

    settings = settings_of(args)
    client = _client(settings)
    try:
        rows: list[DeadLetter] = []
        for dead in iter_dead_letters(client, settings.dead_letter_stream):
            if args.limit is not None and len(rows) >= args.limit:
                break
            rows.append(dead)
        total = int(client.xlen(settings.dead_letter_stream))
    finally:
        client.close()
    if not rows:
        echo(f"no dead letters in {settings.dead_letter_stream}")
        return 0
    now = time.time()
    table = [("ID", "REASON", "ORIGINAL ENTRY", "AGE")] + [
        (
            d.id,
            clip(d.reason),
            safe(f"{d.stream} {d.entry_id}"),
            short_age(d.age(now)),
        )
        for d in rows
    ]
    echo(columns(table))
    if total > len(rows):
        echo(f"({len(rows):,} of {total:,} shown)")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from metastream.consumer.dead_letters import retry_dead_letters

    if args.all == bool(args.ids):
        raise ValueError("give the dead-letter ids to retry, or --all (not both)")
    bad = [i for i in args.ids if not ENTRY_ID.match(i)]
    if bad:
        shown = ", ".join(repr(b) for b in bad)
        raise ValueError(
            f"not a dead-letter id: {shown} "
            "(an id looks like 1764590000000-0: see `metastream dead-letters list`)"
        )
    settings = settings_of(args)
    client = _client(settings)
    try:
        done = retry_dead_letters(
            client, settings.dead_letter_stream, None if args.all else args.ids
        )
    except redis.RedisError as exc:
        raise MetastreamError(f"cannot retry dead letters: {safe(str(exc))}") from exc
    finally:
        client.close()
    for dead, new_id in done:
        echo(f"{dead.id} -> {dead.stream} {new_id}")
    echo(f"retried {len(done)} dead letter{'s' if len(done) != 1 else ''}")
    return 0
