"""``metastream up``, ``down`` and ``status``: the local stack (see ``metastream.stack.local``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metastream.cli.common import settings as settings_of
from metastream.stack.status import StackStatus


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        help="start a local Redis server and the consumer",
        description=(
            "Start a Redis server (AOF on, data under $METASTREAM_HOME/redis) and a consumer "
            "writing the event log. In the foreground by default: Ctrl-C stops both. "
            "Producers find the stack through $METASTREAM_HOME/stack.json."
        ),
    )
    up.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="run both in the background and return once they are ready",
    )
    up.set_defaults(handler=cmd_up)

    down = sub.add_parser(
        "down",
        help="stop the local stack (the consumer first, then Redis)",
        description="Stop the consumer (it finishes its batch), then Redis.",
    )
    down.set_defaults(handler=cmd_down)

    status = sub.add_parser(
        "status",
        help="show the stack: Redis, the stream, consumer groups, dead letters, the log",
        description=(
            "Show the server, the stream's length, each group's lag and pending entries, "
            "the dead letters, the log's head and every projection's checkpoint. "
            "Exits 1 when the stack is down."
        ),
    )
    status.set_defaults(handler=cmd_status)


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from metastream.consumer.app import GRACEFUL_TIMEOUT
    from metastream.stack.local import up

    if not args.detach:
        from metastream.cli.consumer import configure_logging

        configure_logging("INFO")
        _say(f"(a batch in progress gets up to {GRACEFUL_TIMEOUT:.0f} s to finish on Ctrl-C)")
    up(settings_of(args), detach=args.detach, say=_say)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from metastream.stack.local import down

    down(settings_of(args), say=_say)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from metastream.stack.status import gather

    db = Path(args.db).expanduser() if getattr(args, "db", None) else None
    status = gather(settings_of(args), db=db)
    for line in render(status):
        print(line)
    if status.url is None:
        print(
            "metastream: the stack is not up: start it with `metastream up` "
            "(or set METASTREAM_REDIS_URL)",
            file=sys.stderr,
        )
        return 1
    if not status.up:
        print("metastream: Redis does not answer: start it with `metastream up`", file=sys.stderr)
        return 1
    if status.consumer_alive is False:
        print(
            "metastream: the consumer is not running: restart with "
            "`metastream down && metastream up`",
            file=sys.stderr,
        )
        return 1
    return 0


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render(status: StackStatus) -> list[str]:
    """``status`` as lines for a terminal."""
    lines = []
    if status.url is None:
        lines.append("redis      not up (no stack.json, and METASTREAM_REDIS_URL is not set)")
    elif status.up:
        pid = f", pid {status.server_pid}" if status.server_pid else ""
        lines.append(f"redis      {status.url}  up ({status.version}{pid}; from {status.source})")
    else:
        lines.append(f"redis      {status.url}  DOWN ({status.error})")
    if status.consumer_pid is not None:
        state = "running" if status.consumer_alive else "NOT RUNNING"
        lines.append(f"consumer   pid {status.consumer_pid}  {state}")
    if status.up:
        lines.append(f"stream     {status.stream}  {_n(status.stream_length)} entries")
        if not status.groups:
            lines.append("  no consumer groups yet")
        for group in status.groups:
            lag = "unknown" if group.lag is None else f"{group.lag:,}"
            lines.append(
                f"  group {group.name}  lag {lag}  pending {group.pending:,}  "
                f"consumers {len(group.consumers)}"
            )
            for name, pending, idle in group.consumers:
                lines.append(f"    {name}  pending {pending:,}  idle {idle:,.1f} s")
        lines.append(f"dead       {status.dead_letter_stream}  {_n(status.dead_letters)} entries")
    if status.db_error is not None:
        lines.append(f"log        {status.db}  ({status.db_error})")
    else:
        lines.append(f"log        {status.db}  head {_n(status.head)}")
        for name, position in sorted(status.checkpoints.items()):
            behind = (status.head or 0) - position
            lag = f"  ({behind:,} behind)" if behind else ""
            lines.append(f"  view {name}  checkpoint {position:,}{lag}")
    return lines
