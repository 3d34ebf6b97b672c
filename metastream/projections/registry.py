"""The registry: pipeline runs, step runs, artifact versions and model versions.

One table, ``entities``, keyed by the entity's 16-byte id. ``position`` is
the log position of the event that registered the entity; references only
resolve to entities registered before them (see ``resolve``). A finish
event that arrives before its start leaves a row with ``position`` NULL and
the final status; the start fills in the rest and keeps that status.

Versions left to the registry (``version`` None) are numbered per name in
log order: 1, 2, 3, ...

This module owns the table's SQL: the projection's writes, and the reads
other modules need (``registered``, and the ``*_query`` builders that the
sans-I/O resolver in ``resolve.py`` yields).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final

from metastream.eventlog.sqlite import chunks, placeholders
from metastream.projections.base import Projection, Records
from metastream.schemas import (
    ArtifactVersionRegistered,
    ModelVersionRegistered,
    RawMetadataLogged,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)

REGISTRY_DDL: Final = """
CREATE TABLE IF NOT EXISTS entities (
    id             BLOB PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT,
    version        TEXT,
    version_number INTEGER,
    run_id         BLOB,
    step_id        BLOB,
    pipeline_name  TEXT,
    status         TEXT,
    error          TEXT,
    created        REAL,
    finished       REAL,
    uri            TEXT,
    position       INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_by_name ON entities(kind, name, version);
CREATE INDEX IF NOT EXISTS entities_by_run ON entities(run_id, kind);
"""

_START_RUN: Final = """
INSERT INTO entities(id, kind, name, pipeline_name, status, created, position)
VALUES (?, 'pipeline_run', ?, ?, 'running', ?, ?)
ON CONFLICT(id) DO UPDATE SET
    name=excluded.name, pipeline_name=excluded.pipeline_name, created=excluded.created,
    position=excluded.position, status=coalesce(entities.status, excluded.status)
WHERE entities.position IS NULL AND entities.kind = excluded.kind
"""
_START_STEP: Final = """
INSERT INTO entities(id, kind, name, run_id, status, created, position)
VALUES (?, 'step_run', ?, ?, 'running', ?, ?)
ON CONFLICT(id) DO UPDATE SET
    name=excluded.name, run_id=excluded.run_id, created=excluded.created,
    position=excluded.position, status=coalesce(entities.status, excluded.status)
WHERE entities.position IS NULL AND entities.kind = excluded.kind
"""
_FINISH: Final = """
INSERT INTO entities(id, kind, status, error, finished) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    status=excluded.status, error=excluded.error, finished=excluded.finished
WHERE entities.kind = excluded.kind
"""
_REGISTER_VERSION: Final = """
INSERT OR IGNORE INTO entities(
    id, kind, name, version, version_number, run_id, step_id, uri, created, position
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _bytes(value: uuid.UUID | None) -> bytes | None:
    return None if value is None else value.bytes


class RegistryProjection(Projection):
    name = "registry"
    version = 1
    ddl = REGISTRY_DDL
    tables = ("entities",)

    def apply(self, conn: sqlite3.Connection, records: Records) -> None:
        run_starts: list[tuple[Any, ...]] = []
        step_starts: list[tuple[Any, ...]] = []
        versions: list[tuple[Any, ...]] = []
        finishes: list[tuple[Any, ...]] = []
        numbers: dict[tuple[str, str], int] = {}
        for position, event in records:
            if type(event) is RawMetadataLogged:  # most events: skip them first
                continue
            if isinstance(event, RunStarted):
                run_starts.append(
                    (event.run_id.bytes, event.name, event.pipeline_name, event.ts, position)
                )
            elif isinstance(event, StepStarted):
                step_starts.append(
                    (event.step_id.bytes, event.name, event.run_id.bytes, event.ts, position)
                )
            elif isinstance(event, RunFinished):
                finishes.append(
                    (event.run_id.bytes, "pipeline_run", event.status, event.error, event.ts)
                )
            elif isinstance(event, StepFinished):
                finishes.append(
                    (event.step_id.bytes, "step_run", event.status, event.error, event.ts)
                )
            elif isinstance(event, ArtifactVersionRegistered | ModelVersionRegistered):
                if isinstance(event, ArtifactVersionRegistered):
                    kind, entity_id = "artifact_version", event.artifact_version_id
                    step_id, uri = _bytes(event.step_id), event.uri
                else:
                    kind, entity_id = "model_version", event.model_version_id
                    step_id, uri = None, None
                version, number = event.version, None
                if version is None:
                    number = self._next_number(conn, numbers, kind, event.name)
                    version = str(number)
                versions.append(
                    (
                        entity_id.bytes,
                        kind,
                        event.name,
                        version,
                        number,
                        _bytes(event.run_id),
                        step_id,
                        uri,
                        event.ts,
                        position,
                    )
                )
        if run_starts:
            conn.executemany(_START_RUN, run_starts)
        if step_starts:
            conn.executemany(_START_STEP, step_starts)
        if versions:
            conn.executemany(_REGISTER_VERSION, versions)
        if finishes:
            conn.executemany(_FINISH, finishes)

    @staticmethod
    def _next_number(
        conn: sqlite3.Connection, numbers: dict[tuple[str, str], int], kind: str, name: str
    ) -> int:
        key = (kind, name)
        if key not in numbers:
            row = conn.execute(
                "SELECT max(version_number) FROM entities WHERE kind=? AND name=?", (kind, name)
            ).fetchone()
            numbers[key] = int(row[0] or 0)
        numbers[key] += 1
        return numbers[key]


# -- reads: what other modules ask of the registry -----------------------------

Query = tuple[str, tuple[Any, ...]]


def registered(conn: sqlite3.Connection, ids: Sequence[bytes]) -> Iterator[tuple[bytes, str, int]]:
    """``(id, kind, registration position)`` of those of ``ids`` that are registered."""
    for chunk in chunks(ids):
        yield from conn.execute(
            "SELECT id, kind, position FROM entities "
            f"WHERE position IS NOT NULL AND id IN ({placeholders(len(chunk))})",
            chunk,
        )


def kind_query(entity_id: bytes) -> Query:
    """Rows ``(kind, position)`` of the entity ``entity_id`` (position NULL: not started)."""
    return ("SELECT kind, position FROM entities WHERE id=?", (entity_id,))


def step_query(run_id: bytes, name: str, before: int) -> Query:
    """Rows ``(id,)`` of the step ``name`` of run ``run_id`` registered before ``before``."""
    return (
        "SELECT id FROM entities WHERE kind='step_run' AND run_id=? AND name=? AND position < ?",
        (run_id, name, before),
    )


def version_query(kind: str, name: str, version: str, before: int) -> Query:
    """Rows ``(id,)`` of the artifact or model versions ``name``/``version`` before ``before``."""
    return (
        "SELECT id FROM entities WHERE kind=? AND name=? AND version=? AND position < ? "
        "ORDER BY position",
        (kind, name, version, before),
    )


def run_prefix_query(ref: str, hex_prefix: str | None, before: int) -> Query:
    """Rows ``(id, name)`` of the runs whose name, or hex id, starts with ``ref``."""
    return (
        "SELECT id, name FROM entities WHERE kind='pipeline_run' AND position < ? AND ("
        "substr(name, 1, ?) = ? OR (? IS NOT NULL AND substr(lower(hex(id)), 1, ?) = ?))",
        (before, len(ref), ref, hex_prefix, len(hex_prefix or ""), hex_prefix),
    )


def check(conn: sqlite3.Connection) -> None:
    """Raise ``sqlite3.Error`` unless the registry's table is there (a metastream database)."""
    conn.execute("SELECT 1 FROM entities LIMIT 1").fetchone()


def entity(conn: sqlite3.Connection, entity_id: bytes) -> sqlite3.Row | None:
    """The entity's row (columns by name), or ``None``."""
    cursor = conn.execute("SELECT * FROM entities WHERE id=?", (entity_id,))
    cursor.row_factory = sqlite3.Row
    row: sqlite3.Row | None = cursor.fetchone()
    return row


def run_named(conn: sqlite3.Connection, name: str) -> bytes | None:
    """The id of a run named exactly ``name`` (the first one), or ``None``."""
    found = runs_named(conn, name, 1)
    return found[0] if found else None


def runs_named(conn: sqlite3.Connection, name: str, limit: int) -> list[bytes]:
    """The ids of up to ``limit`` runs named exactly ``name`` (on the name index)."""
    rows = conn.execute(
        "SELECT id FROM entities WHERE kind='pipeline_run' AND name=? LIMIT ?", (name, limit)
    )
    return [bytes(row[0]) for row in rows]


def runs_with_step(conn: sqlite3.Connection, step_name: str, limit: int) -> list[str]:
    """The names of the latest runs (newest first) that have a step named ``step_name``."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT r.name FROM entities s JOIN entities r ON r.id = s.run_id "
            "WHERE s.kind='step_run' AND s.name=? AND s.position IS NOT NULL "
            "ORDER BY s.position DESC LIMIT ?",
            (step_name, limit),
        )
    ]


def latest_named(conn: sqlite3.Connection, kind: str, name: str) -> bytes | None:
    """The id of the last registered ``kind`` (artifact or model version) named ``name``."""
    row = conn.execute(
        "SELECT id FROM entities WHERE kind=? AND name=? AND position IS NOT NULL "
        "ORDER BY position DESC LIMIT 1",
        (kind, name),
    ).fetchone()
    return None if row is None else bytes(row[0])


StepRow = tuple[bytes, str, str | None, float | None, float | None, str | None, int]
"""``(id, name, status, created, finished, error, registration position)``."""


def steps_of(conn: sqlite3.Connection, run_id: bytes) -> list[StepRow]:
    """The run's registered steps, in the order they were registered."""
    return [
        (bytes(r[0]), *r[1:])
        for r in conn.execute(
            "SELECT id, name, status, created, finished, error, position FROM entities "
            "WHERE run_id=? AND kind='step_run' AND position IS NOT NULL ORDER BY position",
            (run_id,),
        )
    ]


def produced(conn: sqlite3.Connection, run_id: bytes, kind: str) -> list[bytes]:
    """The ids of the ``kind`` entities (artifact versions) a run produced, in order."""
    return [
        bytes(r[0])
        for r in conn.execute(
            "SELECT id FROM entities WHERE run_id=? AND kind=? AND position IS NOT NULL "
            "ORDER BY position",
            (run_id, kind),
        )
    ]


def runs(
    conn: sqlite3.Connection, pipeline_name: str | None = None, limit: int | None = None
) -> list[bytes]:
    """Run ids, newest first, optionally of one pipeline, at most ``limit``."""
    sql = (
        "SELECT id FROM entities WHERE kind='pipeline_run' AND position IS NOT NULL"
        + (" AND pipeline_name=?" if pipeline_name is not None else "")
        + " ORDER BY position DESC"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
    )
    params = (pipeline_name,) if pipeline_name is not None else ()
    return [bytes(r[0]) for r in conn.execute(sql, params)]


RUN_ORDERS: Final = {"created": "coalesce(created, 0)", "name": "name"}
"""What a page of runs may be sorted by, and the SQL of each (a run with no time first)."""


def runs_page(
    conn: sqlite3.Connection,
    *,
    by: str,
    descending: bool,
    limit: int,
    pipeline: str | None = None,
    status: str | None = None,
    name_like: str | None = None,
    since: float | None = None,
    until: float | None = None,
    after: tuple[Any, bytes] | None = None,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` runs ``(id, name, pipeline_name, status, created, finished, error,
    position, <sort value>)`` sorted by ``by`` (``RUN_ORDERS``) then id, after the cursor
    ``after`` (``(sort value, id)`` of the last row of the page before).

    ``name_like`` is a ``LIKE`` pattern with ``\\`` as its escape character.
    """
    if by not in RUN_ORDERS:
        raise ValueError(f"runs cannot be sorted by {by!r}")
    column = RUN_ORDERS[by]
    where = ["kind='pipeline_run'", "position IS NOT NULL"]
    params: list[Any] = []
    for clause, value in (
        ("pipeline_name=?", pipeline),
        ("status=?", status),
        ("name LIKE ? ESCAPE '\\'", name_like),
        ("created >= ?", since),
        ("created < ?", until),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if after is not None:
        op = "<" if descending else ">"
        where.append(f"({column} {op} ? OR ({column} = ? AND id {op} ?))")
        params.extend([after[0], after[0], after[1]])
    order = "DESC" if descending else "ASC"
    return conn.execute(
        f"SELECT id, name, pipeline_name, status, created, finished, error, position, {column} "
        f"FROM entities WHERE {' AND '.join(where)} ORDER BY {column} {order}, id {order} "
        "LIMIT ?",
        [*params, limit],
    ).fetchall()


def pipelines(conn: sqlite3.Connection) -> list[str]:
    """The names of the pipelines that have runs, sorted."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT pipeline_name FROM entities WHERE kind='pipeline_run' "
            "AND pipeline_name IS NOT NULL ORDER BY pipeline_name"
        )
    ]


def steps_of_runs(
    conn: sqlite3.Connection, run_ids: Sequence[bytes]
) -> Iterator[tuple[bytes, bytes, str]]:
    """``(step id, run id, step name)`` of the registered steps of ``run_ids``."""
    for chunk in chunks(run_ids):
        for step_id, run_id, name in conn.execute(
            "SELECT id, run_id, name FROM entities WHERE kind='step_run' AND position IS NOT NULL"
            f" AND run_id IN ({placeholders(len(chunk))})",
            chunk,
        ):
            yield bytes(step_id), bytes(run_id), name


def members(conn: sqlite3.Connection, run_id: bytes, kind: str) -> list[tuple[Any, ...]]:
    """``(id, kind, name, version, status, created, finished, error, position)`` of the
    ``kind`` entities of a run, in the order they were registered."""
    return conn.execute(
        "SELECT id, kind, name, version, status, created, finished, error, position "
        "FROM entities WHERE run_id=? AND kind=? AND position IS NOT NULL ORDER BY position",
        (run_id, kind),
    ).fetchall()


def registration(
    conn: sqlite3.Connection, entity_id: bytes
) -> tuple[str, str | None, int | None, float | None] | None:
    """``(kind, name, registration position, created)`` of an entity, or ``None``."""
    row = conn.execute(
        "SELECT kind, name, position, created FROM entities WHERE id=?", (entity_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])
