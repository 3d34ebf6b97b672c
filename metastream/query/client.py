"""``Client``: the reference's fetch API over metastream's views.

    client = Client()
    client.get_pipeline_run("nightly-1").steps["train"].run_metadata["accuracy"]
    client.get_artifact_version("dataset").run_metadata["row_count"]

Configured like the CLI: ``db=``, else ``$METASTREAM_DB``, else
``$METASTREAM_HOME/metastream.db``. Every call reads the latest committed
state; values come back as the types that were logged.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

from metastream.config import Settings
from metastream.errors import EventRejected
from metastream.query.reader import Reader

if TYPE_CHECKING:
    from metastream.pipelines.runs import PipelineRun
from metastream.query.views import (
    ArtifactVersionView,
    HistoryEntry,
    ModelVersionView,
    RunView,
    StepView,
)


class Handle(Protocol):
    """What ``log_metadata`` returns (``metastream.pipelines.emit.LogHandle``)."""

    @property
    def event_ids(self) -> tuple[bytes, ...]: ...

    @property
    def target(self) -> str: ...

    @property
    def deferred(self) -> Any: ...


class Client:
    """Read runs, steps, artifact versions and model versions, with their metadata."""

    def __new__(
        cls, db: str | Path | None = None, *, url: str | None = None, token: str | None = None
    ) -> Client:
        """``Client(url="http://host:8237")`` reads over the HTTP API (``metastream ui``)."""
        if url is not None and cls is Client:
            from metastream.query.remote import RemoteClient

            return super().__new__(RemoteClient)
        return super().__new__(cls)

    def __init__(
        self, db: str | Path | None = None, *, url: str | None = None, token: str | None = None
    ) -> None:
        self.db = Path(db).expanduser() if db is not None else Settings.from_env().db
        self._reader: Reader | None = None
        self._lock = threading.Lock()

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = Reader(self.db)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the reference's fetch API -----------------------------------------

    def get_pipeline_run(
        self, name_id_or_prefix: str | uuid.UUID, *, rollups: bool = True
    ) -> RunView:
        """A run by id, name or unique prefix; ``.run_metadata`` includes ``step::key`` rollups."""
        with self._lock:
            return self.reader.run(name_id_or_prefix, rollups=rollups)

    def list_pipeline_runs(
        self, pipeline_name: str | None = None, *, size: int | None = None, rollups: bool = True
    ) -> list[RunView]:
        """Runs, newest first, optionally of one pipeline (at most ``size``), with rollups."""
        with self._lock:
            return self.reader.list_runs(pipeline_name, limit=size, rollups=rollups)

    def get_run_step(self, step_run_id: str | uuid.UUID) -> StepView:
        with self._lock:
            return self.reader.step(step_run_id)

    def get_artifact_version(
        self, name_id_or_prefix: str | uuid.UUID, version: str | int | None = None
    ) -> ArtifactVersionView:
        """An artifact version by name and version (the latest when none), or by id."""
        with self._lock:
            return self.reader.artifact_version(
                name_id_or_prefix, None if version is None else str(version)
            )

    def get_run_artifacts(self, run: RunView | str | uuid.UUID) -> list[ArtifactVersionView]:
        """The artifact versions a run's steps produced (``run``: a view, id, name or prefix)."""
        with self._lock:
            run_id = run.id.bytes if isinstance(run, RunView) else self.reader.run_id(run)
            return self.reader.run_artifacts(run_id)

    def get_model_version(
        self,
        model_name_or_id: str | uuid.UUID,
        model_version_name_or_number_or_id: str | int | None = None,
    ) -> ModelVersionView:
        """A model version by model name and version (the latest when none), or by id."""
        version = model_version_name_or_number_or_id
        with self._lock:
            return self.reader.model_version(
                model_name_or_id, None if version is None else str(version)
            )

    # -- beyond the reference ----------------------------------------------

    def get_metadata_history(
        self, entity: RunView | StepView | ArtifactVersionView | ModelVersionView, key: str
    ) -> list[HistoryEntry]:
        """Every value ever logged for ``key`` of ``entity``, oldest first."""
        with self._lock:
            return self.reader.history(entity.id.bytes, key)

    def compare_runs(
        self, runs: Sequence[str | uuid.UUID | RunView]
    ) -> dict[str, list[int | float | None]]:
        """The numeric metadata of several runs side by side (rollups included).

        Returns ``{key: [value in run 1, value in run 2, ...]}`` for every key
        that is a number in at least one run; nested cards contribute
        ``card.field`` keys.
        """
        views = [r if isinstance(r, RunView) else self.get_pipeline_run(r) for r in runs]
        flat = [dict(_numbers(v.run_metadata)) for v in views]
        keys = sorted({k for f in flat for k in f})
        return {k: [f.get(k) for f in flat] for k in keys}

    @overload
    def wait_for(self, handle: PipelineRun, timeout: float = 10.0) -> RunView: ...

    @overload
    def wait_for(self, handle: Handle, timeout: float = 10.0) -> None: ...

    def wait_for(self, handle: Handle | PipelineRun, timeout: float = 10.0) -> RunView | None:
        """Return once the events of ``handle`` are visible in the views.

        ``handle`` is what ``log_metadata`` returns, or a pipeline run (what
        calling a ``@pipeline`` returns): then it waits for every event the
        run published and returns the run's view, with its rollups.

        Flushes this process's producer first. Raises ``EventRejected`` if one
        was rejected (or was never published), ``TimeoutError`` if they are
        not visible within ``timeout`` seconds (saying why, when one waits
        for its entity).
        """
        self._wait(handle, timeout)
        run_id = getattr(handle, "id", None)
        if isinstance(run_id, uuid.UUID) and hasattr(handle, "pipeline_name"):
            return self.get_pipeline_run(run_id)
        return None

    def _wait(self, handle: Handle, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        deferred = getattr(handle, "deferred", None)
        if deferred is not None:
            deferred.published.wait(max(0.0, deadline - time.monotonic()))
            if deferred.discarded:
                raise EventRejected(f"metadata for {handle.target}: {deferred.discarded}")
        from metastream.producer import flush

        flush(max(0.0, deadline - time.monotonic()))
        ids = list(handle.event_ids)
        while True:
            with self._lock:
                set_aside = self.reader.set_aside(ids)
                positions = self.reader.positions_of(ids)
                applied = self.reader.applied_through()
            if set_aside and set_aside[0].rejected:
                raise EventRejected(
                    f"metadata for {handle.target} was rejected: {set_aside[0].reason}"
                )
            waiting = set_aside
            if len(positions) == len(ids) and max(positions.values()) <= applied and not waiting:
                return
            if time.monotonic() >= deadline:
                why = (
                    f"it waits: {waiting[0].reason}"
                    if waiting
                    else "the consumer has not processed it yet (is `metastream up` running?)"
                )
                raise TimeoutError(
                    f"metadata for {handle.target} not visible after {timeout:g}s: {why}"
                )
            time.sleep(0.02)


def _numbers(metadata: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, int | float]]:
    for key, value in metadata.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield prefix + key, value
        elif isinstance(value, dict):
            yield from _numbers(value, f"{prefix}{key}.")
