"""``metastream tail``: follow the events live in the terminal, like ``kubectl logs -f``.

Without ``--group`` the tail has a group of its own for as long as it runs
(``tail-<host>-<pid>``), deleted when it ends; one left by a tail that was
killed is deleted by the next tail on the same machine. With ``--group`` the
group stays, and the next ``tail --group`` with the same name continues where
this one stopped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from metastream.cli import views
from metastream.cli.common import settings as settings_of
from metastream.cli.render import json_text
from metastream.schemas import ENTITY_KINDS, AnyEvent, MetadataLogged
from metastream.schemas.jsonform import json_form
from metastream.schemas.text import escape_controls
from metastream.subscriptions.filters import TYPE_NAMES

TAIL_PREFIX = "tail-"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tail",
        help="follow the events live (Ctrl-C to stop)",
        description=(
            "Print metastream's events as they are published, one line each, until Ctrl-C. "
            "With --from start or a log position, first the events already in the event log, "
            "then the live ones, with no gap and no duplicate at the switch."
        ),
    )
    p.add_argument(
        "--from",
        dest="from_",
        default="now",
        metavar="WHERE",
        help="'now' (default): only new events; 'start': the whole log first; N: after log "
        "position N",
    )
    p.add_argument(
        "--type",
        action="append",
        choices=sorted(TYPE_NAMES),
        help="event type (repeat for several)",
    )
    p.add_argument("--pipeline", action="append", help="pipeline name (repeat for several)")
    p.add_argument(
        "--kind", action="append", choices=ENTITY_KINDS, help="entity kind (repeat for several)"
    )
    p.add_argument(
        "--key", action="append", help="metadata key: events that log it (repeat for several)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--group",
        help="a consumer group of your own that stays after the tail ends (the next tail "
        "with it continues where this one stopped); default: a group for this tail only",
    )
    p.add_argument(
        "--feed",
        metavar="URL",
        help="read the log through the events feed of `metastream ui` at URL instead of the "
        "database file (default: $METASTREAM_UI_URL)",
    )
    p.set_defaults(handler=_tail)


def _start(text: str) -> Any:
    if text in ("start", "now"):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--from must be 'start', 'now' or a log position, not {text!r}")


def event_json(event: AnyEvent) -> dict[str, Any]:
    """The event as JSON builtins, as ``events --json`` writes it (without its position)."""
    data = views.event_json(0, event)
    del data["position"]
    return data


def json_line(event: AnyEvent) -> str:
    """One line for ``--json``: :func:`event_json` as JSON, control characters escaped."""
    return json_text(event_json(event))


def _value(value: Any) -> str:
    text = json.dumps(json_form(value), ensure_ascii=False, allow_nan=False)
    return text[1:-1] if text.startswith('"') and isinstance(value, str) else text


def event_line(event: AnyEvent) -> str:
    """One line for the terminal: time, type, what it is about, its fields."""
    when = datetime.datetime.fromtimestamp(event.ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    name = type(event).__name__
    if isinstance(event, MetadataLogged):
        parts = [event.target.describe()]
        if event.component:
            parts.append(f"[{event.component}]")
        parts.extend(f"{k}={_value(v)}" for k, v in event.metadata.items())
    else:
        fields = event_json(event)
        for field in ("event_id", "type", "ts"):
            fields.pop(field)
        parts = [f"{k}={v}" for k, v in fields.items() if v is not None]
    return escape_controls(f"{when} {name} {' '.join(parts)}")


def _forget_abandoned_tails(subscription: Any) -> None:
    """Delete the groups of tails on this machine whose process is gone."""
    import asyncio

    import redis

    from metastream.processes import local_consumer_pid, pid_alive

    client = redis.Redis.from_url(subscription.url)
    try:
        groups = client.xinfo_groups(subscription.keys.stream)
    except redis.ResponseError:
        return
    finally:
        client.close()
    for info in groups:
        name = info["name"].decode()
        pid = local_consumer_pid(name.removeprefix(TAIL_PREFIX))
        if name.startswith(TAIL_PREFIX) and pid is not None and not pid_alive(pid):
            from metastream.subscriptions import subscribe

            gone = subscribe(print, group=name, options=subscription.options)
            asyncio.run(gone.forget())


def _tail(args: argparse.Namespace) -> int:
    import asyncio

    from metastream.processes import consumer_name
    from metastream.subscriptions import EventFilter, SubscribeOptions, subscribe

    settings = settings_of(args)
    event_filter = EventFilter.of(args.type, args.pipeline, args.kind, args.key)
    render = json_line if args.json else event_line

    def show(event: AnyEvent) -> None:
        sys.stdout.write(render(event) + "\n")
        sys.stdout.flush()

    group = args.group or f"{TAIL_PREFIX}{consumer_name()}"
    subscription = subscribe(
        show,
        group=group,
        from_=_start(args.from_),
        filter=event_filter,
        history=args.feed,
        options=SubscribeOptions(settings=settings),
    )
    if not args.group:
        _forget_abandoned_tails(subscription)
    try:
        subscription.run()
    finally:
        if not args.group:
            asyncio.run(subscription.forget())
    return 0
