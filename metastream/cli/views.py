"""``metastream replay | show | history | rejections | events``: the views from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import uuid
from typing import Any

import msgspec

from metastream.cli.colour import Palette
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
from metastream.cli.times import parse_time
from metastream.errors import StoreError
from metastream.projections import Store
from metastream.query import Reader, StepView, as_of
from metastream.query.reader import require_database, step_needs_run
from metastream.query.views import ArtifactVersionView, ModelVersionView, RunView
from metastream.schemas import MetadataLogged, decode_event, parse_uuid
from metastream.schemas.jsonform import metadata_json_form
from metastream.urls import mask_url

EntityView = RunView | StepView | ArtifactVersionView | ModelVersionView


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="rebuild views from the event log",
        description="Rebuild the named views (all by default) from position 0 of the event log.",
    )
    p.add_argument(
        "projections", nargs="*", metavar="PROJECTION", help="registry, latest (default: all)"
    )
    p.set_defaults(handler=replay)

    p = sub.add_parser("show", help="show a run, step, artifact or model version and its metadata")
    p.add_argument("kind", choices=KINDS, help="what REF names")
    p.add_argument(
        "ref",
        metavar="REF",
        help="runs: name, id or id prefix; steps: name (with --run) or id; "
        "artifacts and models: name (with --version) or id",
    )
    _where(p)
    p.add_argument("--no-rollups", action="store_true", help="runs: leave out step::key rollups")
    p.add_argument(
        "--as-of",
        metavar="POSITION|TIME",
        help="the entity as it was at a log position or an ISO time: its status, steps, "
        "artifacts and metadata then",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of a table (values in the form of docs/views.md)",
    )
    p.set_defaults(handler=show)

    p = sub.add_parser(
        "history",
        help="every value ever logged for one key",
        description=(
            "Every value ever logged for KEY, oldest first, with its log position and the "
            "component that logged it. For a run, KEY may be a rollup step::key: the step's "
            "history of key."
        ),
    )
    p.add_argument("kind", choices=KINDS, help="what REF names")
    p.add_argument("ref", metavar="REF", help="as for `show`")
    p.add_argument("key", metavar="KEY", help="the metadata key (runs: also step::key)")
    _where(p)
    p.set_defaults(handler=history)

    p = sub.add_parser(
        "rejections",
        help="events that were rejected or still wait for an entity",
        description=(
            "MetadataLogged events that were not applied: rejected ones (an ambiguous "
            "reference, an id of another kind) and those still waiting for their entity."
        ),
    )
    p.set_defaults(handler=rejections)

    p = sub.add_parser(
        "events",
        help="the raw event log",
        description="The event log in position order; says on stderr when more events follow.",
    )
    p.add_argument("--after", type=int, default=0, metavar="N", help="start after position N")
    p.add_argument(
        "--limit", type=int, default=50, metavar="M", help="show at most M events (default: 50)"
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line (times in ISO 8601)"
    )
    p.set_defaults(handler=events)


KINDS = ["run", "step", "artifact", "model"]


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="RUN", help="steps: the run (name, id or prefix)")
    p.add_argument(
        "--version", metavar="VERSION", help="artifacts and models (default: the latest)"
    )


def replay(args: argparse.Namespace) -> int:
    config = settings(args)
    names: list[str] = list(args.projections)
    if config.event_log:
        # Store replays the log in the database file, which is empty when the log is
        # elsewhere: it would empty the views.
        raise StoreError(
            f"the event log is not in {config.db} (METASTREAM_EVENT_LOG="
            f"{mask_url(config.event_log)}): replaying a log in another storage is not "
            "supported yet; unset METASTREAM_EVENT_LOG to replay the log in the database file"
        )

    async def go() -> int:
        store = await Store.open(config.db, catch_up=False)
        try:
            bar = ProgressBar("replay")
            count = await store.replay(names or None, progress=bar)
            done = ", ".join(names) if names else "all projections"
            echo(  # the bar's clock and count: its last line states the same rate
                f"rebuilt {done} from {count:,} events in {bar.elapsed():.1f}s "
                f"({bar.rate(count):,.0f}/s)"
            )
            return 0
        finally:
            await store.close()

    require_database(config.db)
    return asyncio.run(go())


def _entity(reader: Reader, args: argparse.Namespace) -> bytes:
    if args.kind == "run":
        return reader.run_id(args.ref)
    if args.kind == "step":
        if args.run is None and parse_uuid(args.ref) is None:
            runs = reader.runs_with_step(args.ref)
            raise ValueError(step_needs_run(args.ref, runs, "pass --run RUN"))
        return reader.step_id(args.ref, args.run)
    if args.kind == "artifact":
        return reader.artifact_version_id(args.ref, args.version)
    return reader.model_version_id(args.ref, args.version)


def _as_of(text: str) -> dict[str, Any]:
    if text.isdigit():
        return {"position": int(text)}
    try:
        return {"time": parse_time(text)}
    except ValueError:
        raise ValueError(
            f"--as-of {text!r} is neither a log position nor an ISO time like 2026-11-23T15:00"
        ) from None


def show(args: argparse.Namespace) -> int:
    point = _as_of(args.as_of) if args.as_of else None
    with Reader(settings(args).db) as reader:
        entity = _entity(reader, args)
        if point is None:
            view = _view(reader, entity, args)
        else:
            view = _view_as_of(reader, entity, args, point)
        artifacts = []
        if isinstance(view, RunView):
            artifacts = as_of.run_artifacts_as_of(reader, entity, **(point or {}))
    metadata = view.run_metadata
    if args.json:
        data = json_header(view)
        if args.as_of:
            data["as_of"] = args.as_of
        data["metadata"] = metadata_json_form(metadata)
        if isinstance(view, RunView):
            data["steps"] = [_step_json(s) for s in view.steps.values()]
            data["artifacts"] = [_artifact_json(a) for a in artifacts]
        print(json_text(data, indent=2))
        return 0
    header, steps = _header(view)
    if args.as_of:
        header["as of"] = args.as_of
    palette = Palette.of(sys.stdout)
    echo(entity_lines(header, metadata, steps, artifacts=artifacts, palette=palette))
    return 0


def _step_json(step: StepView) -> dict[str, Any]:
    """A step in ``show run --json``: its fields without metadata (the run's rollups hold it)."""
    data = json_header(step)
    del data["run"]
    return data


def _artifact_json(artifact: ArtifactVersionView) -> dict[str, Any]:
    return {**json_header(artifact), "metadata": metadata_json_form(artifact.run_metadata)}


def _view(reader: Reader, entity: bytes, args: argparse.Namespace) -> EntityView:
    as_id = uuid.UUID(bytes=entity)
    if args.kind == "run":
        return reader.run_by_id(entity, rollups=not args.no_rollups)
    if args.kind == "step":
        return reader.step(as_id)
    if args.kind == "artifact":
        return reader.artifact_version(as_id)
    return reader.model_version(as_id)


def _view_as_of(
    reader: Reader, entity: bytes, args: argparse.Namespace, point: dict[str, Any]
) -> EntityView:
    """The entity as it was at ``point``; ``ReferenceNotFound`` if it did not exist yet."""
    if args.kind == "run":
        return as_of.run_as_of(reader, entity, rollups=not args.no_rollups, **point)
    if args.kind == "step":
        return as_of.step_as_of(reader, entity, **point)
    view = _view(reader, entity, args)
    assert isinstance(view, ArtifactVersionView | ModelVersionView)
    return as_of.version_as_of(reader, view, **point)


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
        key = args.key
        if args.kind == "run" and "::" in key:  # a rollup: run keys never hold ':'
            step, _, key = key.rpartition("::")
            entity = reader.step_id(step, uuid.UUID(bytes=entity))
        entries = reader.history(entity, key)
        if not entries:
            echo(f"nothing logged for {args.key!r}", file=sys.stderr)
            return 1
        rows = [
            [str(e.position), when(e.logged_at), e.component or "-", show_value(e.value)]
            for e in entries
        ]
    palette = Palette.of(sys.stdout)
    echo(table(["position", "logged at", "component", "value"], rows, palette=palette))
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
    palette = Palette.of(sys.stdout)
    echo(table(["position", "state", "target", "reason"], rows, palette=palette, status_column=1))
    return 0


def events(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, not {args.limit}")
    with Reader(settings(args).db) as reader:
        found = reader.bodies(args.after, args.limit)
        head = reader.head()
    for position, body in found:
        event = decode_event(body)
        if args.json:
            print(json_text(event_json(position, event)))
            continue
        summary = _summary(event)
        echo(
            f"{position:>8}  {when(datetime.datetime.fromtimestamp(event.ts, datetime.UTC))}  "
            f"{type(event).__name__:<26} {summary}"
        )
    last = found[-1][0] if found else args.after
    if head > last:  # positions are gapless: head - last events follow
        more = head - last
        echo(
            f"{more:,} more event{'s' if more != 1 else ''}: metastream events --after {last}",
            file=sys.stderr,
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
