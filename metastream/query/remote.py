"""``Client(url="http://host:8237")``: the same reads over the HTTP API of ``metastream ui``.

A notebook on another machine reads runs, steps, artifact and model
versions with their metadata, values of the types that were logged (the
API's JSON form is read back exactly). A server that needs a token gets it
from ``token=`` or ``$METASTREAM_UI_TOKEN``. Errors are the local client's:
``ReferenceNotFound`` (a ``KeyError``) for an unknown reference,
``AmbiguousReference``/``ValueError`` for a bad one, ``LogElsewhere`` for a
read that needs a log the server cannot read.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from metastream.api import models  # the API's answers: msgspec Structs, no web framework
from metastream.errors import (
    AmbiguousReference,
    LogElsewhere,
    MetastreamError,
    ReferenceNotFound,
)
from metastream.query.client import Client
from metastream.query.views import (
    ArtifactVersionView,
    HistoryEntry,
    ModelVersionView,
    RunView,
    Steps,
    StepView,
    View,
    view_of,
)
from metastream.schemas.jsonform import from_json_form

T = TypeVar("T")
PAGE = 200


class RemoteError(MetastreamError, RuntimeError):
    """The server answered with an error that is not about a reference (or did not answer)."""


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    return {key: from_json_form(value) for key, value in data.items()}


class RemoteClient(Client):
    """What ``Client(url=...)`` returns: the ``Client`` API over HTTP."""

    def __init__(
        self, db: str | Path | None = None, *, url: str | None = None, token: str | None = None
    ) -> None:
        if url is None:
            raise ValueError("RemoteClient needs url=, the address of `metastream ui`")
        token = token or os.environ.get("METASTREAM_UI_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    @property
    def reader(self) -> Any:
        raise TypeError("a Client reading over HTTP has no database reader")

    def _get(self, path: str, type: type[T], **params: Any) -> T:
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            response = self.http.get(path, params=clean)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
                message = str(problem.get("message", response.text))
            except ValueError:
                problem, message = {}, response.text
            if response.status_code == 404:
                raise ReferenceNotFound(message)
            if response.status_code == 400 and problem.get("candidates"):
                raise AmbiguousReference(message, list(problem["candidates"]))
            if response.status_code == 400:
                raise ValueError(message)
            if response.status_code == 501:  # the server's log is in another storage
                raise LogElsewhere(message)
            raise RemoteError(f"{self.url}{path}: {response.status_code} {message}")
        return msgspec.json.decode(response.content, type=type)

    def _version(
        self, collection: str, ref: str | uuid.UUID, version: str | int | None, answer: type[T]
    ) -> T:
        """An artifact or model version (``collection``: its path) by id, or name and version."""
        number = None if version is None else str(version)
        return self._get(f"/{collection}/{_path(ref)}", answer, version=number)

    # -- the reference's fetch API -----------------------------------------

    def get_pipeline_run(
        self, name_id_or_prefix: str | uuid.UUID, *, rollups: bool = True
    ) -> RunView:
        run = self._get(
            f"/runs/{_path(name_id_or_prefix)}", models.Run, rollups=str(rollups).lower()
        )
        steps = {s.name: _view(StepView, s) for s in run.steps}
        return _view(RunView, run, steps=Steps(run.name, steps))

    def list_pipeline_runs(
        self, pipeline_name: str | None = None, *, size: int | None = None, rollups: bool = True
    ) -> list[RunView]:
        ids: list[uuid.UUID] = []
        cursor = None
        while size is None or len(ids) < size:
            limit = PAGE if size is None else min(PAGE, size - len(ids))
            page = self._get(
                "/runs", models.RunList, pipeline=pipeline_name, limit=limit, cursor=cursor
            )
            ids += [r.id for r in page.runs]
            cursor = page.next_cursor
            if cursor is None:
                break
        return [self.get_pipeline_run(i, rollups=rollups) for i in ids]

    def get_run_step(self, step_run_id: str | uuid.UUID) -> StepView:
        return _view(StepView, self._get(f"/steps/{_path(step_run_id)}", models.Step))

    def get_artifact_version(
        self, name_id_or_prefix: str | uuid.UUID, version: str | int | None = None
    ) -> ArtifactVersionView:
        found = self._version(
            "artifact-versions", name_id_or_prefix, version, models.ArtifactVersion
        )
        return _view(ArtifactVersionView, found)

    def get_run_artifacts(self, run: RunView | str | uuid.UUID) -> list[ArtifactVersionView]:
        ref = run.id if isinstance(run, RunView) else run
        found = self._get(f"/runs/{_path(ref)}", models.Run, rollups="false")
        return [self.get_artifact_version(a.id) for a in found.artifacts]

    def get_model_version(
        self,
        model_name_or_id: str | uuid.UUID,
        model_version_name_or_number_or_id: str | int | None = None,
    ) -> ModelVersionView:
        version = model_version_name_or_number_or_id
        found = self._version("model-versions", model_name_or_id, version, models.ModelVersion)
        return _view(ModelVersionView, found)

    def get_metadata_history(
        self, entity: RunView | StepView | ArtifactVersionView | ModelVersionView, key: str
    ) -> list[HistoryEntry]:
        found = self._get(f"/entities/{entity.id}/history", models.History, key=key)
        return [
            HistoryEntry(
                position=e.position,
                event_id=e.event_id,
                logged_at=e.logged_at,
                value=from_json_form(e.value),
                component=e.component,
            )
            for e in found.entries
        ]

    def wait_for(self, handle: Any, timeout: float = 10.0) -> Any:
        raise TypeError(
            "wait_for needs the database (Client(db=...)): it follows this process's own "
            "events into the log"
        )


def _path(ref: str | uuid.UUID) -> str:
    text = str(ref)
    if "/" in text:
        raise ValueError(f"{text!r}: names with '/' can only be read by id over HTTP")
    return urllib.parse.quote(text, safe="")


def _view(view: type[View], answer: Any, **given: Any) -> View:
    """The query view of an API answer: the same fields, the metadata read back exactly."""
    return view_of(view, answer, _metadata(answer.metadata), **given)
