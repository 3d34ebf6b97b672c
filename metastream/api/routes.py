"""The JSON API under ``/api/v1`` (read-only).

Entity reads take ``as_of`` (a log position, or an ISO 8601 time); metadata
values are in the JSON form of ``metastream.schemas.jsonform``. Handlers
are synchronous and run in Litestar's thread pool, each thread with its own
SQLite reader.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from metastream.api import entities, feed, live, models
from metastream.api.readers import MAX_POSITION, iso_time, parse_as_of, reader_of
from metastream.query import browse
from metastream.query.compare import MAX_COMPARED

AS_OF_DOC: Final = (
    "Read the entity as it was at this log position (a whole number) or time "
    "(ISO 8601, UTC when it has no offset). The registry is read as of it too."
)
AsOfParam = Annotated[str | None, QueryParameter(description=AS_OF_DOC)]


def _seconds(text: str | None, name: str) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    when = iso_time(text)
    if when is None:
        raise ValueError(f"{name}={text[:60]!r} is neither Unix seconds nor an ISO 8601 time")
    return when.timestamp()


@get("/runs", sync_to_thread=True, summary="List pipeline runs")
def list_runs(
    state: State,
    pipeline: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    name: Annotated[str | None, QueryParameter(description="a substring of the run's name")] = None,
    since: Annotated[
        str | None, QueryParameter(description="created at or after (ISO 8601 or Unix seconds)")
    ] = None,
    until: Annotated[
        str | None, QueryParameter(description="created before (ISO 8601 or Unix seconds)")
    ] = None,
    sort: Annotated[
        str, QueryParameter(description="-created, created, -name or name")
    ] = "-created",
    limit: Annotated[int, QueryParameter(ge=1, le=browse.MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the previous page")
    ] = None,
) -> models.RunList:
    """Runs matching the filters, one page at a time, each with its numeric metadata."""
    reader = reader_of(state)
    if sort not in browse.RUN_SORTS:
        raise ValueError(f"sort must be one of {', '.join(browse.RUN_SORTS)}, not {sort!r}")
    page = browse.list_runs_page(
        reader,
        pipeline=pipeline,
        status=status,
        name=name,
        since=_seconds(since, "since"),
        until=_seconds(until, "until"),
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return models.RunList(entities.summaries(reader, page.runs), page.next_cursor)


@get("/runs/{run:str}", sync_to_thread=True, summary="A pipeline run")
def get_run(
    state: State, run: FromPath[str], as_of: AsOfParam = None, rollups: FromQuery[bool] = True
) -> models.Run:
    """A run by id, name or unique id/name prefix: metadata, steps, artifacts, models."""
    reader = reader_of(state)
    found = entities.run(reader, run, as_of=parse_as_of(as_of), rollups=rollups)
    return entities.json_metadata(found)


@get("/runs/{run:str}/steps/{step:str}", sync_to_thread=True, summary="A step of a run by name")
def get_run_step(
    state: State, run: FromPath[str], step: FromPath[str], as_of: AsOfParam = None
) -> models.Step:
    reader = reader_of(state)
    return entities.json_metadata(entities.step(reader, step, run, as_of=parse_as_of(as_of)))


@get("/steps/{step_id:str}", sync_to_thread=True, summary="A step run by id")
def get_step(state: State, step_id: FromPath[str], as_of: AsOfParam = None) -> models.Step:
    reader = reader_of(state)
    return entities.json_metadata(entities.step(reader, step_id, as_of=parse_as_of(as_of)))


@get("/artifact-versions/{ref:str}", sync_to_thread=True, summary="An artifact version")
def get_artifact_version(
    state: State, ref: FromPath[str], version: FromQuery[str | None] = None, as_of: AsOfParam = None
) -> models.ArtifactVersion:
    """By id, or by artifact name and ``version`` (the latest version when none)."""
    reader = reader_of(state)
    found = entities.artifact_version(reader, ref, version, as_of=parse_as_of(as_of))
    return entities.json_metadata(found)


@get("/model-versions/{ref:str}", sync_to_thread=True, summary="A model version")
def get_model_version(
    state: State, ref: FromPath[str], version: FromQuery[str | None] = None, as_of: AsOfParam = None
) -> models.ModelVersion:
    """By id, or by model name and ``version`` (the latest version when none)."""
    reader = reader_of(state)
    found = entities.model_version(reader, ref, version, as_of=parse_as_of(as_of))
    return entities.json_metadata(found)


@get("/entities/{entity_id:str}/history", sync_to_thread=True, summary="A key's history")
def get_history(state: State, entity_id: FromPath[str], key: FromQuery[str]) -> models.History:
    """Every value ``key`` of an entity (by id) ever had, oldest first, and who logged it."""
    reader = reader_of(state)
    return entities.json_metadata(entities.history(reader, entity_id, key))


@get("/runs/{run:str}/history", sync_to_thread=True, summary="A run key's history")
def get_run_history(state: State, run: FromPath[str], key: FromQuery[str]) -> models.History:
    """Every value ``key`` of a run (id, name or prefix) ever had, oldest first."""
    reader = reader_of(state)
    run_id = browse.run_ref(reader, run)
    return entities.json_metadata(entities.history(reader, str(uuid.UUID(bytes=run_id)), key))


@get(
    "/runs/{run:str}/steps/{step:str}/history",
    sync_to_thread=True,
    summary="A step key's history",
)
def get_step_history(
    state: State, run: FromPath[str], step: FromPath[str], key: FromQuery[str]
) -> models.History:
    """Every value ``key`` of a run's step (by name) ever had, oldest first."""
    reader = reader_of(state)
    step_id = reader.step_id(step, run)
    return entities.json_metadata(entities.history(reader, str(uuid.UUID(bytes=step_id)), key))


@get("/compare", sync_to_thread=True, summary="Compare runs")
def get_comparison(
    state: State,
    runs: Annotated[
        list[str],
        QueryParameter(
            description="runs (id, name or prefix; repeated or comma-separated), "
            f"at most {MAX_COMPARED}"
        ),
    ],
    baseline: Annotated[
        str | None, QueryParameter(description="one of runs (default: the first)")
    ] = None,
) -> models.Comparison:
    """The union of the runs' keys (cards flattened to ``card.field``), each run's value, and
    whether it differs from the baseline run's. More than 20 runs is a 400."""
    reader = reader_of(state)
    found, baseline_index = entities.load_comparison(reader, runs, baseline)
    return entities.comparison(reader, found, baseline_index, json=True)


@get("/events", sync_to_thread=True, summary="The event log after a position")
def get_events(
    state: State,
    after: Annotated[
        int, QueryParameter(ge=0, le=MAX_POSITION, description="a log position (0: from the start)")
    ] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=feed.MAX_EVENTS)] = 100,
) -> models.EventPage:
    """Events the views have applied, oldest first; follow ``next_after`` to catch up."""
    return feed.events_after(reader_of(state), after, limit)


@get("/status", sync_to_thread=True, summary="Log head and what the views applied")
def get_status(state: State) -> models.Status:
    reader = reader_of(state)
    head = None if reader.log_at is not None else reader.head()  # health checks poll this
    return models.Status(head=head, applied_through=reader.applied_through())


@get("/pipelines", sync_to_thread=True, summary="Pipeline names")
def get_pipelines(state: State) -> list[str]:
    return browse.pipelines(reader_of(state))


@get(
    "/stream",
    summary="Server-Sent Events: what the views committed",
    media_type="text/event-stream",
)
async def get_stream(
    request: Request,  # type: ignore[type-arg]
    state: State,
) -> Stream:
    """``event: commit`` with ``id`` and ``data.position`` = the position the views applied
    through, whenever it moves. Reconnecting with ``Last-Event-ID`` resumes: a message comes
    at once if the views moved meanwhile. Read what changed from ``/events?after=``."""
    committed: live.Committed = state.committed
    last_event_id = request.headers.get("last-event-id")
    last = None
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        last = int(last_event_id)
    return Stream(
        live.stream(committed, last),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def router() -> Router:
    return Router(
        path="/api/v1",
        route_handlers=[
            list_runs,
            get_run,
            get_run_step,
            get_step,
            get_artifact_version,
            get_model_version,
            get_history,
            get_run_history,
            get_step_history,
            get_comparison,
            get_events,
            get_status,
            get_pipelines,
            get_stream,
        ],
        tags=["metastream"],
    )
