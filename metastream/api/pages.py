"""The dashboard's pages: server-rendered with Jinja2 (autoescaped), small JS modules on top.

Every page is plain HTML that works without script; ``live.js`` re-fetches
the page when the views commit and swaps the parts marked ``data-live``, so
one renderer (this one) draws both the first view and every update.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import MediaType, Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from metastream.api import entities, models
from metastream.api.readers import parse_as_of, reader_of
from metastream.api.render import cards, is_web_link, short_number, value_html
from metastream.api.security import COOKIE, token_matches
from metastream.durations import human_duration
from metastream.query import Reader, browse
from metastream.query.compare import MAX_COMPARED
from metastream.sizes import human_size

PAGE_SIZE: Final = 50
METRIC_COLUMNS: Final = 4
LAZY_STEPS: Final = 12
"""A run with more steps shows their cards when a step is opened (one page stays light)."""

_env = Environment(
    loader=PackageLoader("metastream.api", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    if start is None or end is None:
        return ""
    return human_duration((end - start).total_seconds())


def _query(**params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", [])}
    return urlencode(clean, doseq=True)


_env.globals.update(
    value_html=value_html,
    cards=cards,
    when=_when,
    duration=_duration,
    human_size=human_size,
    short_number=short_number,
    is_web_link=is_web_link,
    query=_query,
    MAX_COMPARED=MAX_COMPARED,
    LAZY_STEPS=LAZY_STEPS,
)


def render(template: str, status: int = 200, **context: Any) -> Response[str]:
    html = _env.get_template(template).render(**context)
    return Response(html, status_code=status, media_type=MediaType.HTML)


def error_page(request: Request[Any, Any, Any], status: int, message: str) -> Response[str]:
    return render("error.html", status=status, status_code=status, message=message)


@get("/", sync_to_thread=True, include_in_schema=False)
def runs_page(
    state: State,
    q: FromQuery[str | None] = None,
    pipeline: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    sort: FromQuery[str] = "-created",
    cursor: FromQuery[str | None] = None,
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    if sort not in browse.RUN_SORTS:
        sort = "-created"
    page = browse.list_runs_page(
        reader,
        pipeline=pipeline or None,
        status=status or None,
        name=q or None,
        sort=sort,  # type: ignore[arg-type]
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    runs = entities.summaries(reader, page.runs)
    counts: dict[str, int] = {}
    for run in runs:
        for key in run.metrics:
            counts[key] = counts.get(key, 0) + 1
    columns = sorted(counts, key=lambda k: (-counts[k], "::" in k, k))[:METRIC_COLUMNS]
    return render(
        "runs.html",
        runs=runs,
        columns=columns,
        next_cursor=page.next_cursor,
        pipelines=browse.pipelines(reader),
        statuses=browse.RUN_STATUSES,
        filters={"q": q or "", "pipeline": pipeline or "", "status": status or "", "sort": sort},
        first_page=not cursor,
        position=position,
    )


@get("/runs/{run:str}", sync_to_thread=True, include_in_schema=False)
def run_page(
    state: State, run: FromPath[str], as_of: FromQuery[str | None] = None
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    found = entities.run(reader, run, as_of=parse_as_of(as_of), rollups=False)
    return render("run.html", run=found, as_of=as_of or "", head=position, position=position)


@get("/steps/{step_id:str}", sync_to_thread=True, include_in_schema=False)
def step_page(
    state: State, step_id: FromPath[str], as_of: FromQuery[str | None] = None
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    found = entities.step(reader, step_id, as_of=parse_as_of(as_of))
    run = _run_crumb(reader, found.run_id)
    return render(
        "step.html", step=found, run=run, as_of=as_of or "", head=position, position=position
    )


def _run_crumb(reader: Reader, run_id: uuid.UUID | None) -> dict[str, Any] | None:
    """The run a page's entity belongs to, for its breadcrumb: its id and name."""
    if run_id is None:
        return None
    registered = browse.registration(reader, run_id.bytes)  # the run's name, not its steps
    return {"id": run_id, "name": registered.name if registered else str(run_id)}


@get("/artifact-versions/{ref:str}", sync_to_thread=True, include_in_schema=False)
def artifact_page(
    state: State,
    ref: FromPath[str],
    version: FromQuery[str | None] = None,
    as_of: FromQuery[str | None] = None,
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    found = entities.artifact_version(reader, ref, version, as_of=parse_as_of(as_of))
    return _version_page(found, _run_crumb(reader, found.run_id), as_of, position)


@get("/model-versions/{ref:str}", sync_to_thread=True, include_in_schema=False)
def model_page(
    state: State,
    ref: FromPath[str],
    version: FromQuery[str | None] = None,
    as_of: FromQuery[str | None] = None,
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    found = entities.model_version(reader, ref, version, as_of=parse_as_of(as_of))
    return _version_page(found, _run_crumb(reader, found.run_id), as_of, position)


def _version_page(
    found: models.ArtifactVersion | models.ModelVersion,
    run: dict[str, Any] | None,
    as_of: str | None,
    position: int,
) -> Response[str]:
    """An artifact or a model version: one template (models have no URI)."""
    uri = found.uri if isinstance(found, models.ArtifactVersion) else None
    return render(
        "version.html",
        entity=found,
        run=run,
        kind="artifact" if isinstance(found, models.ArtifactVersion) else "model",
        web_uri=uri is not None and is_web_link(uri),
        as_of=as_of or "",
        head=position,
        position=position,
    )


@get("/history", sync_to_thread=True, include_in_schema=False)
def history_page(state: State, entity: FromQuery[str], key: FromQuery[str]) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    found = entities.history(reader, entity, key)
    reg = browse.registration(reader, found.entity.bytes)
    numbers = [
        (float(i), float(e.value))
        for i, e in enumerate(found.entries)
        if type(e.value) in (int, float)
    ]
    return render(
        "history.html",
        history=found,
        owner_name=reg.name if reg else None,
        chart=sparkline(numbers) if len(numbers) >= 2 else None,
        position=position,
    )


@get("/compare", sync_to_thread=True, include_in_schema=False)
def compare_page(
    state: State,
    runs: FromQuery[list[str] | None] = None,
    baseline: FromQuery[str | None] = None,
) -> Response[str]:
    reader = reader_of(state)
    position = reader.applied_through()
    if not runs:
        return render("compare.html", data=None, MAX=MAX_COMPARED)
    found, index = entities.load_comparison(reader, runs, baseline)
    result = entities.comparison(reader, found, index, json=True)
    data = {
        "baseline": str(result.baseline),
        "runs": [
            {"id": str(r.id), "name": r.name, "status": r.status, "pipeline": r.pipeline_name}
            for r in result.runs
        ],
        "rows": [
            {
                "key": k.key,
                "values": k.values,
                "present": k.present,
                "differs": k.differs,
                "numeric": k.numeric,
            }
            for k in result.keys
        ],
    }
    return render("compare.html", data=data, MAX=MAX_COMPARED, position=position)


def sparkline(
    points: list[tuple[float, float]], width: int = 1200, height: int = 200
) -> dict[str, Any]:
    """An SVG polyline of ``(x, value)`` points, drawn on the server (no script needed)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points if p[1] == p[1] and abs(p[1]) != float("inf")]
    if not ys:
        return {"points": "", "width": width, "height": height, "low": "", "high": ""}
    lo, hi = min(ys), max(ys)
    x0, x1 = min(xs), max(xs)
    pad = 12
    span_x = (x1 - x0) or 1.0
    span_y = (hi - lo) or 1.0
    out = []
    for x, y in points:
        if y != y or abs(y) == float("inf"):
            continue
        px = pad + (x - x0) / span_x * (width - 2 * pad) if x1 != x0 else width / 2
        py = height - pad - (y - lo) / span_y * (height - 2 * pad)
        out.append(f"{px:.1f},{py:.1f}")
    return {
        "points": " ".join(out),
        "dots": [tuple(map(float, p.split(","))) for p in out],
        "width": width,
        "height": height,
        "low": short_number(lo),
        "high": short_number(hi),
    }


@get("/login", include_in_schema=False)
async def login_form(state: State, failed: FromQuery[bool] = False) -> Response[str]:
    return render("login.html", failed=failed, token_needed=bool(state.token))


@post("/login", include_in_schema=False, status_code=303)
async def login(
    request: Request[Any, Any, Any],
    state: State,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    token: str | None = state.token
    if token is None or not token_matches(data.get("token"), token):
        return Redirect("/login?failed=true", status_code=303)
    response: Response[Any] = Redirect("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            runs_page,
            run_page,
            step_page,
            artifact_page,
            model_page,
            history_page,
            compare_page,
            login_form,
            login,
        ],
        include_in_schema=False,
    )
