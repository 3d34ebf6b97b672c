"""``metastream up``, ``down`` and ``status``: the local stack (see ``metastream.stack.local``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metastream.cli.common import settings as settings_of
from metastream.durations import human_duration
from metastream.stack.status import GroupStatus, SpoolStatus, StackStatus
from metastream.urls import mask_url


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        help="start the local stack: Redis, the consumer, the projector and the dashboard",
        description=(
            "Start a Redis server (AOF on, a generated password, data under "
            "$METASTREAM_HOME/redis), a consumer writing the event log, a projector writing the "
            "views, and the dashboard (`metastream ui`). In the foreground by default: Ctrl-C "
            "stops them all. Producers find the stack through $METASTREAM_HOME/stack.json."
        ),
    )
    up.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="run the stack in the background and return once it is ready",
    )
    up.add_argument(
        "--no-ui",
        action="store_true",
        help="do not start the dashboard (`metastream ui`, on $METASTREAM_UI_PORT, 8237)",
    )
    up.set_defaults(handler=cmd_up)

    down = sub.add_parser(
        "down",
        help="stop the local stack (every process it started, Redis last)",
        description=(
            "Stop every process the stack started, in the reverse of their start order: the "
            "dashboard, the projector (it commits its transaction) and the consumer (it "
            "finishes its batch), then Redis (it flushes its AOF)."
        ),
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
    from metastream.stack.local import up

    if not args.detach:
        from metastream.cli.common import configure_logging

        configure_logging("INFO")
    up(
        settings_of(args), detach=args.detach, say=_say, dashboard=not args.no_ui
    )  # says the Ctrl-C hint once it is up
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
    problem = _problem(status)
    if problem is not None:
        print(f"metastream: {problem}", file=sys.stderr)
        return 1
    return 0


def _problem(status: StackStatus) -> str | None:
    """The one thing to tell the user on stderr (and exit 1 for), if anything is wrong."""
    if status.url is None:
        if status.crashed_stack is not None:
            return (
                "the local stack crashed (its Redis is gone): `metastream up` stops what is "
                "left of it and starts anew"
            )
        return "the stack is not up: start it with `metastream up` (or set METASTREAM_REDIS_URL)"
    if not status.up:
        if status.auth_failed or status.source != "stack.json":
            return status.error or "Redis does not answer"
        return f"{status.error}: start it with `metastream up`"
    if status.consumer_problem is not None:
        return f"the consumer {status.consumer_problem}"
    if status.consumer_alive is False:
        return "the consumer is not running: restart with `metastream down && metastream up`"
    if status.projector_alive is False:
        return (
            "the projector is not running (the views do not advance; the log loses nothing): "
            "restart with `metastream down && metastream up`, or run `metastream project`"
        )
    return None


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _redis_lines(status: StackStatus) -> list[str]:
    if status.url is None:
        if status.crashed_stack is None:
            return ["redis      not up (no stack.json, and METASTREAM_REDIS_URL is not set)"]
        server = next((p for p in status.crashed_stack if p.role == "server"), None)
        pid = f", pid {server.pid}," if server is not None else ""
        return [f"redis      not up: the stack in stack.json crashed (its redis{pid} is gone)"]
    url = mask_url(status.url)
    if status.up:
        pid = f", pid {status.server_pid}" if status.server_pid else ""
        return [f"redis      {url}  up ({status.version}{pid}; from {status.source})"]
    state = "REFUSED" if status.auth_failed else "DOWN"
    return [f"redis      {state}: {status.error or url}"]


def _consumer_lines(status: StackStatus) -> list[str]:
    if status.consumer_pid is None:
        problem = status.consumer_problem
        return [] if problem is None else [f"consumer   {problem}"]
    if status.url is None and status.crashed_stack is not None:
        if not status.consumer_alive:
            return [f"consumer   pid {status.consumer_pid}  gone"]
        return [
            f"consumer   pid {status.consumer_pid}  STILL RUNNING against the dead redis "
            "(`metastream up` or `metastream down` stops it)"
        ]
    state = "running" if status.consumer_alive else "NOT RUNNING"
    lines = [f"consumer   pid {status.consumer_pid}  {state}"]
    if status.consumer_problem is not None:
        lines.append(f"  {status.consumer_problem}")
    return lines


def _group_lines(group: GroupStatus) -> list[str]:
    lag = "unknown" if group.lag is None else f"{group.lag:,}"
    live = [c for c in group.consumers if not c.gone]
    forgotten = len(group.consumers) - len(live)
    gone = f" (+{forgotten} of this machine gone)" if forgotten else ""
    lines = [
        f"  group {group.name}  lag {lag}  pending {group.pending:,}  consumers {len(live)}{gone}"
    ]
    for c in group.consumers:
        if not c.gone:
            lines.append(f"    {c.name}  pending {c.pending:,}  idle {c.idle:,.1f} s")
        elif c.pending:  # what a gone consumer holds is claimed by a live one
            lines.append(f"    {c.name}  GONE, pending {c.pending:,} (to be claimed)")
    return lines


def _spool_lines(spool: SpoolStatus | None) -> list[str]:
    if spool is None:
        return []
    if not spool.files and not spool.set_aside:
        return ["spool      empty"]
    age = spool.oldest_age_s
    oldest = "" if age is None else f", oldest {human_duration(age)} old"
    aside = f"; {spool.set_aside:,} files SET ASIDE (could not be sent)" if spool.set_aside else ""
    return [f"spool      {spool.events:,} events in {spool.files:,} files{oldest}{aside}"]


def _projector_lines(status: StackStatus) -> list[str]:
    if status.projector_pid is None:
        return []
    state = "running" if status.projector_alive else "NOT RUNNING (the views do not advance)"
    return [f"projector  pid {status.projector_pid}  {state}"]


def _ui_lines(status: StackStatus) -> list[str]:
    if status.ui_pid is None:
        return []
    state = "answers" if status.ui_answers else "NOT ANSWERING (`metastream ui` serves it by hand)"
    return [f"dashboard  {status.ui_url}  pid {status.ui_pid}  {state}"]


def render(status: StackStatus) -> list[str]:
    """``status`` as lines for a terminal (URLs with their password masked)."""
    lines = (
        _redis_lines(status)
        + _consumer_lines(status)
        + _projector_lines(status)
        + _ui_lines(status)
    )
    if status.up:
        lines.append(f"stream     {status.stream}  {_n(status.stream_length)} entries")
        if not status.groups:
            lines.append("  no consumer groups yet")
        for group in status.groups:
            lines.extend(_group_lines(group))
        lines.append(f"dead       {status.dead_letter_stream}  {_n(status.dead_letters)} entries")
    lines.extend(_spool_lines(status.spool))
    lines.extend(_log_lines(status))
    return lines


def _log_lines(status: StackStatus) -> list[str]:
    """The log's head (or why it could not be read) and each view's checkpoint."""
    if status.db_error is not None:
        lines = [f"log        {status.db}  ({status.db_error})"]
    else:
        lines = [f"log        {status.db}  head {_n(status.head)}"]
    for name, position in sorted(status.checkpoints.items()):  # read even if the head is not
        behind = 0 if status.head is None else status.head - position
        lag = f"  ({behind:,} behind)" if behind else ""
        lines.append(f"  view {name}  checkpoint {position:,}{lag}")
    return lines
