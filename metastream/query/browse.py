"""Queries for browsing many entities: a page of runs, their metrics, "as of" for the registry.

What the HTTP API and the dashboard need beyond :class:`Reader`'s entity
reads. Every function takes a :class:`Reader` and uses its connection (one
snapshot per statement, safe beside the writer).

Runs are paged with a keyset cursor (the sort value and the id of the last
run shown), so page 200 of 10,000 runs costs what page 1 does, and a run
committed while a user pages never shifts or repeats a row.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

from metastream.eventlog import sqlite as logdb
from metastream.projections import latest, registry
from metastream.query.reader import Reader
from metastream.query.views import utc
from metastream.schemas import decode_stored, decode_value, parse_uuid

RunSort = Literal["-created", "created", "-name", "name"]
RUN_SORTS: Final[tuple[RunSort, ...]] = ("-created", "created", "-name", "name")
RUN_STATUSES: Final = ("running", "completed", "failed")
MAX_PAGE: Final = 500
_NUMBER_BYTES: Final = 9
"""A msgpack number is at most 9 bytes: longer values are never metrics."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as a list shows it: the registry's fields, no metadata."""

    id: uuid.UUID
    name: str
    pipeline_name: str | None
    status: str | None
    created: Any
    finished: Any
    error: str | None
    position: int


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRow]
    next_cursor: str | None
    """Pass it back as ``cursor`` for the next page; ``None`` on the last page."""


@dataclass(frozen=True, slots=True)
class Member:
    """An entity registered under a run (a step, an artifact version, a model version)."""

    id: uuid.UUID
    kind: str
    name: str
    version: str | None
    status: str | None
    created: Any
    finished: Any
    error: str | None
    position: int


def _encode_cursor(value: Any, entity: bytes) -> str:
    raw = json.dumps([value, entity.hex()]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, bytes]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, entity = json.loads(raw)
        entity_bytes = bytes.fromhex(entity)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cursor {cursor[:40]!r} is not one this server gave out") from exc
    if not isinstance(value, str | int | float) or len(entity_bytes) != 16:
        raise ValueError(f"cursor {cursor[:40]!r} is not one this server gave out")
    return value, entity_bytes


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_runs_page(
    reader: Reader,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    name: str | None = None,
    since: float | None = None,
    until: float | None = None,
    sort: RunSort = "-created",
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """One page of runs matching the filters.

    ``name``: a case-insensitive substring of the run's name; ``since`` /
    ``until``: Unix seconds, ``since <= created < until``; ``sort``: a column
    (``created``, ``name``), descending with a leading ``-``.
    """
    if sort not in RUN_SORTS:
        raise ValueError(f"sort must be one of {', '.join(RUN_SORTS)}, not {sort!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if status is not None and status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
    rows = registry.runs_page(
        reader.db,
        by=sort.lstrip("-"),
        descending=sort.startswith("-"),
        limit=limit + 1,
        pipeline=pipeline,
        status=status,
        name_like=_like(name) if name else None,
        since=since,
        until=until,
        after=_decode_cursor(cursor) if cursor else None,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    runs = [
        RunRow(
            id=uuid.UUID(bytes=bytes(r[0])),
            name=r[1],
            pipeline_name=r[2],
            status=r[3],
            created=utc(r[4]),
            finished=utc(r[5]),
            error=r[6],
            position=r[7],
        )
        for r in rows
    ]
    next_cursor = _encode_cursor(rows[-1][8], bytes(rows[-1][0])) if more and rows else None
    return RunPage(runs, next_cursor)


def run_ref(reader: Reader, ref: str) -> bytes:
    """The id of the run ``ref`` names (id, exact name, or unique prefix), like ``Reader.run_id``.

    An exact name is looked up on the name index first: resolving a name in
    general also matches prefixes, a scan of every run (2.5 ms at 10,000 runs).
    """
    if parse_uuid(ref) is None:
        found = registry.runs_named(reader.db, ref, 2)
        if len(found) == 1:
            return found[0]
    return reader.run_id(ref)  # none, or a name two runs share: the general rule says which


def pipelines(reader: Reader) -> list[str]:
    """The names of the pipelines that have runs."""
    return registry.pipelines(reader.db)


METRICS_PER_RUN: Final = 20


def run_metrics(
    reader: Reader, run_ids: list[bytes], limit: int = METRICS_PER_RUN
) -> dict[bytes, dict[str, int | float]]:
    """Up to ``limit`` numeric (int or float, not bool) top-level keys of each run.

    The run's own keys first, then ``step::key`` rollups, each by name. One
    query for the steps of all the runs, one for the values; only values
    short enough to be numbers are decoded.
    """
    owner: dict[bytes, tuple[bytes, str]] = {r: (r, "") for r in run_ids}
    for step_id, run_id, name in registry.steps_of_runs(reader.db, run_ids):
        owner[step_id] = (run_id, f"{name}::")
    out: dict[bytes, dict[str, int | float]] = {r: {} for r in run_ids}
    for entity, key, value in latest.short_values(reader.db, list(owner), _NUMBER_BYTES):
        decoded = decode_value(value)
        if type(decoded) in (int, float):
            run_id, prefix = owner[entity]
            out[run_id][prefix + key] = decoded
    for run_id, metrics in out.items():
        if len(metrics) > limit or any("::" in k for k in metrics):
            chosen = sorted(metrics, key=lambda k: ("::" in k, k))[:limit]
            out[run_id] = {k: metrics[k] for k in chosen}
    return out


def members(
    reader: Reader,
    run_id: bytes,
    kind: Literal["step_run", "artifact_version", "model_version"],
    *,
    position: int | None = None,
    time: float | None = None,
) -> list[Member]:
    """The steps, artifact versions or model versions of a run, as registered at a point.

    ``position``/``time``: only entities registered by then; a status that
    was set after it (by a finish event timed later) reads ``running``.
    """
    rows = registry.members(reader.db, run_id, kind)
    cut = cut_time(reader, position, time)
    out = []
    for entity, k, name, version, status, created, finished, error, at in rows:
        if position is not None and at > position:
            continue
        if time is not None and created is not None and created > time:
            continue
        if cut is not None and finished is not None and finished > cut:
            status, finished, error = ("running" if kind == "step_run" else status), None, None
        out.append(
            Member(
                uuid.UUID(bytes=bytes(entity)),
                k,
                name,
                version,
                status,
                utc(created),
                utc(finished),
                error,
                at,
            )
        )
    return out


def cut_time(reader: Reader, position: int | None, time: float | None) -> float | None:
    """The producer time that "as of ``position``/``time``" stands for (the earlier)."""
    times = [] if time is None else [time]
    if position is not None:
        at = position_time(reader, position)
        if at is not None:
            times.append(at)
    return min(times) if times else None


def position_time(reader: Reader, position: int) -> float | None:
    """The producer time of the event at ``position`` (``None`` past the head: no cut)."""
    reader.require_log('reading "as of" a position')
    records = logdb.read(reader.db, max(0, position - 1), 1)
    if not records:
        return None
    return float(decode_stored(records[0].body).ts)


@dataclass(frozen=True, slots=True)
class Registration:
    """What the registry holds about an entity, whatever its kind."""

    kind: str
    name: str | None
    position: int | None
    """The log position of the event that registered it."""
    created: float | None
    """The producer time of that event (Unix seconds)."""


def registration(reader: Reader, entity: bytes) -> Registration | None:
    """The registry's row for ``entity`` (``None`` if there is none)."""
    row = registry.registration(reader.db, entity)
    return None if row is None else Registration(*row)


__all__ = [
    "MAX_PAGE",
    "METRICS_PER_RUN",
    "RUN_SORTS",
    "RUN_STATUSES",
    "Member",
    "RunPage",
    "RunRow",
    "RunSort",
    "cut_time",
    "list_runs_page",
    "members",
    "pipelines",
    "position_time",
    "Registration",
    "registration",
    "run_metrics",
    "run_ref",
]
