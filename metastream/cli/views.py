"""``metastream replay | show | history | rejections | events``: the views from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import uuid
from typing import Any

import msgspec

from metastream.cli.common import ProgressBar, echo, settings
from metastream.cli.render import (
    artifact_header,
    entity_lines,
    iso_ts,
    json_header,
    json_text,
    model_header,
    run_header,
    show_value,
    step_header,
    table,
    when,
)
from metastream.projections import Store
from metastream.query import Reader, StepView
from metastream.query.reader import require_database
from metastream.query.views import ArtifactVersionView, ModelVersionView, RunView
from metastream.schemas import MetadataLogged, decode_event
from metastream.schemas.jsonform import metadata_json_form

EntityView = RunView | StepView | ArtifactVersionView | ModelVersionView


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="rebuild views from the event log")
    p.add_argument(
        "projections", nargs="*", metavar="PROJECTION", help="registry, latest (default: all)"
    )
    p.set_defaults(handler=replay)

    p = sub.add_parser("show", help="show a run, step, artifact or model version and its metadata")
    p.add_argument("kind", choices=["run", "step", "artifact", "model"])
    p.add_argument("ref", help="name, id or id prefix (runs); id or name (others)")
    _where(p)
    p.add_argument("--no-rollups", action="store_true", help="runs: leave out step::key rollups")
    p.add_argument("--as-of", metavar="POSITION|TIME", help="the state at a log position or time")
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of a table (values in the form of docs/logging.md)",
    )
    p.set_defaults(handler=show)

    p = sub.add_parser("history", help="every value ever logged for one key")
    p.add_argument("kind", choices=["run", "step", "artifact", "model"])
    p.add_argument("ref")
    p.add_argument("key")
    _where(p)
    p.set_defaults(handler=history)

    p = sub.add_parser("rejections", help="events that were rejected or still wait for an entity")
    p.set_defaults(handler=rejections)

    p = sub.add_parser("events", help="the raw event log")
    p.add_argument("--after", type=int, default=0, metavar="N", help="start after position N")
    p.add_argument("--limit", type=int, default=50, metavar="M")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line (times in ISO 8601)"
    )
    p.set_defaults(handler=events)


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="RUN", help="steps: the run (name, id or prefix)")
    p.add_argument(
        "--version", metavar="VERSION", help="artifacts and models (default: the latest)"
    )


def replay(args: argparse.Namespace) -> int:
    config = settings(args)
    names: list[str] = list(args.projections)

    async def go() -> int:
        store = await Store.open(config.db, catch_up=False)
        try:
            bar = ProgressBar("replay")
            start = datetime.datetime.now()
            count = await store.replay(names or None, progress=bar)
            seconds = (datetime.datetime.now() - start).total_seconds()
            done = ", ".join(names) if names else "all projections"
            echo(f"rebuilt {done} from {count:,} events in {seconds:.1f}s")
            return 0
        finally:
            await store.close()

    require_database(config.db)
    return asyncio.run(go())


def _entity(reader: Reader, args: argparse.Namespace) -> bytes:
    if args.kind == "run":
        return reader.run_id(args.ref)
    if args.kind == "step":
        return reader.step_id(args.ref, args.run)
    if args.kind == "artifact":
        return reader.artifact_version_id(args.ref, args.version)
    return reader.model_version_id(args.ref, args.version)


def _as_of(text: str) -> dict[str, Any]:
    if text.isdigit():
        return {"position": int(text)}
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--as-of {text!r} is neither a log position nor an ISO time like 2026-11-23T15:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return {"time": moment.timestamp()}


def show(args: argparse.Namespace) -> int:
    with Reader(settings(args).db) as reader:
        entity = _entity(reader, args)
        view = _view(reader, entity, args)
        metadata = view.run_metadata
        if args.as_of:
            when_ = _as_of(args.as_of)
            if args.kind == "run" and not args.no_rollups:
                metadata = reader.run_as_of(entity, **when_)
            else:
                metadata = reader.as_of(entity, **when_)
    if args.json:
        data = json_header(view)
        if args.as_of:
            data["as_of"] = args.as_of
        data["metadata"] = metadata_json_form(metadata)
        print(json_text(data, indent=2))
        return 0
    header, steps = _header(view)
    if args.as_of:
        header["as of"] = args.as_of
    echo(entity_lines(header, metadata, steps))
    return 0


def _view(reader: Reader, entity: bytes, args: argparse.Namespace) -> EntityView:
    as_id = uuid.UUID(bytes=entity)
    if args.kind == "run":
        return reader.run_by_id(entity, rollups=not args.no_rollups)
    if args.kind == "step":
        return reader.step(as_id)
    if args.kind == "artifact":
        return reader.artifact_version(as_id)
    return reader.model_version(as_id)


def _header(view: EntityView) -> tuple[dict[str, str], list[StepView]]:
    if isinstance(view, RunView):
        return run_header(view), list(view.steps.values())
    if isinstance(view, StepView):
        return step_header(view), []
    if isinstance(view, ArtifactVersionView):
        return artifact_header(view), []
    return model_header(view), []


def history(args: argparse.Namespace) -> int:
    with Reader(settings(args).db) as reader:
        entity = _entity(reader, args)
        entries = reader.history(entity, args.key)
        if not entries:
            echo(f"nothing logged for {args.key!r}", file=sys.stderr)
            return 1
        rows = [
            [str(e.position), when(e.logged_at), e.component or "-", show_value(e.value)]
            for e in entries
        ]
    echo(table(["position", "logged at", "component", "value"], rows))
    return 0


def rejections(args: argparse.Namespace) -> int:
    with Reader(settings(args).db) as reader:
        found = reader.set_aside()
    if not found:
        echo("no rejected or waiting events")
        return 0
    rows = [
        [
            str(s.position),
            "rejected" if s.rejected else "waiting",
            s.target,
            s.reason,
        ]
        for s in found
    ]
    echo(table(["position", "state", "target", "reason"], rows))
    return 0


def events(args: argparse.Namespace) -> int:
    with Reader(settings(args).db) as reader:
        for position, body in reader.bodies(args.after, args.limit):
            event = decode_event(body)
            if args.json:
                print(json_text(event_json(position, event)))
                continue
            summary = _summary(event)
            echo(
                f"{position:>8}  {when(datetime.datetime.fromtimestamp(event.ts, datetime.UTC))}  "
                f"{type(event).__name__:<26} {summary}"
            )
    return 0


def event_json(position: int, event: Any) -> dict[str, Any]:
    """One logged event as ``events --json`` writes it: the event's fields, its id as a
    UUID, its time in ISO 8601 and metadata values in the documented JSON form."""
    is_metadata = isinstance(event, MetadataLogged)
    plain = msgspec.structs.replace(event, metadata={}) if is_metadata else event
    data: dict[str, Any] = msgspec.to_builtins(plain)
    data["event_id"] = str(event.id)
    data["ts"] = iso_ts(event.ts)
    if is_metadata:
        data["metadata"] = metadata_json_form(event.metadata)
    return {"position": position, **data}


def _summary(event: Any) -> str:
    if isinstance(event, MetadataLogged):
        keys = ", ".join(event.metadata)
        return f"{event.target.describe()}: {keys}"
    fields = {k: v for k, v in msgspec_fields(event).items() if k not in ("event_id", "ts")}
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def msgspec_fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}
