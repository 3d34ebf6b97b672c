"""Read-only queries over the views, with values of the types that were logged.

Synchronous (``sqlite3``): the CLI and ``Client`` are synchronous, and a
read is a few indexed lookups. Safe beside a writer: SQLite in WAL mode
gives each query a consistent snapshot.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metastream.errors import AmbiguousReference, LogElsewhere, ReferenceNotFound, StoreError
from metastream.eventlog import sqlite as logdb
from metastream.projections import latest, projector, registry
from metastream.projections.resolve import NOW, Rejected, Resolved, resolve, run_sync
from metastream.query.views import (
    ArtifactVersionView,
    HistoryEntry,
    ModelVersionView,
    RunView,
    SetAside,
    Steps,
    StepView,
    utc,
)
from metastream.schemas import (
    ArtifactByName,
    ById,
    EntityKind,
    ModelByName,
    RawMetadataLogged,
    RunByName,
    StepByName,
    Target,
    decode_stored,
    decode_value,
    parse_uuid,
)

_PARAMS = logdb.SQL_PARAMS
_in = logdb.placeholders


def _uuid(raw: bytes | None) -> uuid.UUID | None:
    return None if raw is None else uuid.UUID(bytes=bytes(raw))


def require_database(path: Path) -> None:
    """Raise ``StoreError`` saying how to get a database, if there is none at ``path``."""
    if not path.exists():
        raise StoreError(
            f"no metastream database at {path} "
            "(start the local stack with `metastream up`, or pass --db / set METASTREAM_DB)"
        )


def step_needs_run(step: str, runs: list[str], how: str = "pass its run") -> str:
    """Why a step name alone names no step, and the latest ``runs`` that have one so named."""
    message = f"{step!r} is not a step id, and a step is named within a run: {how}, or its id"
    if runs:
        latest = ", ".join(repr(r) for r in runs)
        message += f" (latest runs with a step {step!r}: {latest})"
    else:
        message += f" (no run has a step {step!r})"
    return message


class Reader:
    """Queries over one metastream database file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        require_database(self.path)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("PRAGMA query_only=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            registry.check(self.db)
            self.log_at = logdb.log_location(self.db)
            """Where the log is when it is not in this file (``METASTREAM_EVENT_LOG``)."""
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path} is not a metastream database: {exc}") from exc

    def require_log(self, what: str) -> None:
        """Raise :class:`LogElsewhere` if the log is not in this file: ``what`` needs it."""
        if self.log_at is not None:
            raise LogElsewhere(
                f"{what} reads the event log, and the log of {self.path} is kept at "
                f"{self.log_at} (METASTREAM_EVENT_LOG), which readers do not read yet; "
                "the views (latest values, runs, steps, rollups) are here and readable"
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolving ---------------------------------------------------------

    def resolve(self, target: Target) -> bytes:
        """The id of the entity ``target`` names, or ``KeyError``/``ValueError``."""
        result = run_sync(resolve(target, NOW), self.db)
        if isinstance(result, Resolved):
            return result.entity_id
        if isinstance(result, Rejected):
            raise AmbiguousReference(result.reason, result.candidates)
        raise ReferenceNotFound(result.reason)

    def run_id(self, name_id_or_prefix: str | uuid.UUID) -> bytes:
        return self.resolve(RunByName(name_id_or_prefix=str(name_id_or_prefix)))

    def run_named(self, name: str) -> bytes | None:
        """The id of a run named exactly ``name`` (the first one), or ``None``."""
        return registry.run_named(self.db, name)

    def step_id(self, step: str | uuid.UUID, run: str | uuid.UUID | None = None) -> bytes:
        """A step run's id: ``step`` is its id, or its name within ``run``.

        A name without a run raises ``ValueError`` saying so (a step is named
        within a run), with the latest runs that have a step of that name.
        """
        if run is None:
            as_id = step if isinstance(step, uuid.UUID) else parse_uuid(str(step))
            if as_id is None:
                raise ValueError(step_needs_run(str(step), self.runs_with_step(str(step))))
            return self.resolve(ById(kind="step_run", id=as_id))
        return self.resolve(StepByName(run=str(run), step_name=str(step)))

    def runs_with_step(self, step_name: str, limit: int = 3) -> list[str]:
        """The names of the latest runs (newest first) that have a step named ``step_name``."""
        return registry.runs_with_step(self.db, step_name, limit)

    def artifact_version_id(self, name_or_id: str | uuid.UUID, version: str | None = None) -> bytes:
        if version is not None:
            return self.resolve(ArtifactByName(name=str(name_or_id), version=str(version)))
        return self._latest_version("artifact_version", name_or_id)

    def model_version_id(self, name_or_id: str | uuid.UUID, version: str | None = None) -> bytes:
        if version is not None:
            return self.resolve(ModelByName(name=str(name_or_id), version=str(version)))
        return self._latest_version("model_version", name_or_id)

    def _latest_version(self, kind: EntityKind, name_or_id: str | uuid.UUID) -> bytes:
        as_id = name_or_id if isinstance(name_or_id, uuid.UUID) else None
        if as_id is None:
            try:
                as_id = uuid.UUID(str(name_or_id))
            except ValueError:
                as_id = None
        if as_id is not None:
            return self.resolve(ById(kind=kind, id=as_id))
        found = registry.latest_named(self.db, kind, str(name_or_id))
        if found is None:
            raise ReferenceNotFound(f"no {kind.replace('_', ' ')} named {str(name_or_id)!r}")
        return found

    # -- metadata ----------------------------------------------------------

    def metadata(self, entity: bytes) -> dict[str, Any]:
        """The latest value of every key of ``entity`` (keys sorted)."""
        return self._metadata_of([entity])[entity]

    def _metadata_of(self, entities: list[bytes]) -> dict[bytes, dict[str, Any]]:
        # One map per entity (the latest view's latest_maps), decoded in one call each.
        found = latest.latest_maps(self.db, entities)
        return {e: found.get(e) or {} for e in entities}

    # -- entities ----------------------------------------------------------

    def _entity_row(self, entity: bytes) -> sqlite3.Row:
        row = registry.entity(self.db, entity)
        if row is None:
            raise ReferenceNotFound(f"no entity with id {uuid.UUID(bytes=entity)}")
        return row

    def run(self, name_id_or_prefix: str | uuid.UUID, *, rollups: bool = True) -> RunView:
        """A pipeline run with its steps; its metadata includes ``step::key`` rollups."""
        run_id = self.run_id(name_id_or_prefix)
        return self.run_by_id(run_id, rollups=rollups)

    def run_by_id(self, run_id: bytes, *, rollups: bool = True, steps: bool = True) -> RunView:
        """A run by id; ``steps=False``: the run's own fields and keys only (no step read)."""
        row = self._entity_row(run_id)
        step_rows = registry.steps_of(self.db, run_id) if steps else []
        metadata = self._metadata_of([run_id, *(r[0] for r in step_rows)])
        run_metadata = metadata[run_id]
        views: dict[str, StepView] = {}
        run_uuid = uuid.UUID(bytes=run_id)
        for step_id, name, status, created, finished, error, _ in step_rows:
            step_metadata = metadata[step_id]
            views[name] = StepView(
                id=uuid.UUID(bytes=step_id),
                name=name,
                run_id=run_uuid,
                status=status,
                created=utc(created),
                finished=utc(finished),
                error=error,
                run_metadata=step_metadata,
            )
            if rollups:
                for key, value in step_metadata.items():
                    run_metadata[f"{name}::{key}"] = value
        return RunView(
            id=run_uuid,
            name=row["name"],
            pipeline_name=row["pipeline_name"],
            status=row["status"],
            created=utc(row["created"]),
            finished=utc(row["finished"]),
            error=row["error"],
            steps=Steps(row["name"], views),
            run_metadata=run_metadata,
        )

    def step(self, step: str | uuid.UUID, run: str | uuid.UUID | None = None) -> StepView:
        """A step run by id, or by name within a run."""
        step_id = self.step_id(step, run)
        row = self._entity_row(step_id)
        return StepView(
            id=uuid.UUID(bytes=step_id),
            name=row["name"],
            run_id=uuid.UUID(bytes=bytes(row["run_id"])),
            status=row["status"],
            created=utc(row["created"]),
            finished=utc(row["finished"]),
            error=row["error"],
            run_metadata=self.metadata(step_id),
        )

    def artifact_version(
        self, name_or_id: str | uuid.UUID, version: str | None = None
    ) -> ArtifactVersionView:
        """An artifact version by name and version (the latest if none), or by id."""
        entity = self.artifact_version_id(name_or_id, version)
        row = self._entity_row(entity)
        return ArtifactVersionView(
            id=uuid.UUID(bytes=entity),
            name=row["name"],
            version=row["version"],
            run_id=_uuid(row["run_id"]),
            step_id=_uuid(row["step_id"]),
            uri=row["uri"],
            created=utc(row["created"]),
            run_metadata=self.metadata(entity),
        )

    def run_artifacts(self, run_id: bytes) -> list[ArtifactVersionView]:
        """The artifact versions a run produced, in the order they were registered."""
        ids = registry.produced(self.db, run_id, "artifact_version")
        return [self.artifact_version(uuid.UUID(bytes=entity)) for entity in ids]

    def model_version(
        self, name_or_id: str | uuid.UUID, version: str | None = None
    ) -> ModelVersionView:
        """A model version by name and version (the latest if none), or by id."""
        entity = self.model_version_id(name_or_id, version)
        row = self._entity_row(entity)
        return ModelVersionView(
            id=uuid.UUID(bytes=entity),
            name=row["name"],
            version=row["version"],
            run_id=_uuid(row["run_id"]),
            created=utc(row["created"]),
            run_metadata=self.metadata(entity),
        )

    def list_runs(
        self, pipeline_name: str | None = None, *, limit: int | None = None, rollups: bool = True
    ) -> list[RunView]:
        """Runs, newest first, optionally of one pipeline."""
        ids = registry.runs(self.db, pipeline_name, limit)
        return [self.run_by_id(run_id, rollups=rollups) for run_id in ids]

    # -- history and "as of" -----------------------------------------------

    def history(self, entity: bytes, key: str) -> list[HistoryEntry]:
        """Every value logged for ``key`` of ``entity``, oldest first (by event id)."""
        self.require_log("the history of a key")
        out = []
        for position, event in latest.events_of(self.db, entity):
            if isinstance(event, RawMetadataLogged) and key in event.metadata:
                out.append(
                    HistoryEntry(
                        position=position,
                        event_id=uuid.UUID(bytes=event.event_id),
                        logged_at=utc(event.ts),  # type: ignore[arg-type]
                        value=decode_value(event.metadata[key]),
                        component=event.component,
                    )
                )
        out.sort(key=lambda e: e.event_id.bytes)
        return out

    def as_of(
        self, entity: bytes, *, position: int | None = None, time: float | None = None
    ) -> dict[str, Any]:
        """``entity``'s metadata as it was at a log position and/or a producer time.

        ``time`` is Unix seconds; an event logged in the same microsecond counts.
        """
        self.require_log('reading metadata "as of" a point')
        raw = latest.values_as_of(self.db, entity, position=position, time=time)
        return {key: decode_value(value) for key, value in raw.items()}

    # -- the log and its bookkeeping ---------------------------------------

    def set_aside(self, event_ids: Iterable[bytes] | None = None) -> list[SetAside]:
        """Events not applied: rejected ones, quarantined ones (a projection could not apply
        them, see ``metastream project --quarantined``), then those still waiting for their
        entity.

        With ``event_ids``, only those among them.
        """
        ids = None if event_ids is None else list(event_ids) or None  # [] as before: all
        out = [
            SetAside(p, uuid.UUID(bytes=e), t, r, True, c)
            for p, e, t, r, c in latest.set_aside(self.db, "rejections", ids)
        ]
        out += self._quarantined(ids)
        out += [
            SetAside(p, uuid.UUID(bytes=e), t, r, False, c)
            for p, e, t, r, c in latest.set_aside(self.db, "pending", ids)
        ]
        return out

    def _quarantined(self, ids: list[bytes] | None) -> list[SetAside]:
        try:
            found = projector.quarantined(self.db, ids)
        except sqlite3.OperationalError:  # a database no projector has prepared yet
            return []
        if found:
            self.require_log("describing quarantined events")
        bodies = {r.position: r.body for r in logdb.read_at(self.db, [q.position for q in found])}
        out: list[SetAside] = []
        for q in found:
            event = decode_stored(bodies[q.position])
            target = getattr(event, "target", None)
            what = target.describe() if target is not None else type(event).__name__
            reason = f"quarantined by the {q.projection} view: {q.reason}"
            out.append(SetAside(q.position, uuid.UUID(bytes=q.event_id), what, reason, True, []))
        return out

    def bodies(self, after: int = 0, limit: int = 100) -> list[tuple[int, bytes]]:
        """``(position, body)`` of up to ``limit`` events after ``after``."""
        self.require_log("the events feed")
        return logdb.read_bodies(self.db, after, limit)

    def head(self) -> int:
        """The position of the log's last event."""
        self.require_log("the log's head")
        return logdb.head(self.db)

    def checkpoints(self) -> dict[str, int]:
        return projector.checkpoints(self.db)

    def applied_through(self) -> int:
        """The position up to which every projection has applied the log."""
        return projector.applied_through(self.db)

    def positions_of(self, event_ids: Iterable[bytes]) -> dict[bytes, int]:
        """The log positions of those of ``event_ids`` that are in the log."""
        self.require_log("waiting for events")
        return logdb.positions_of(self.db, list(event_ids))
