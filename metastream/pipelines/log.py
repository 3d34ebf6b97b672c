"""``log_metadata``: attach metadata to a step, run, artifact version or model version.

The target is chosen as in the reference, first match wins:

1. ``step_id``
2. ``step_name`` + ``run_id_name_or_prefix``
3. ``run_id_name_or_prefix``
4. ``model_name`` + ``model_version``
5. ``model_version_id``
6. ``infer_model=True`` (the model of the running step)
7. ``artifact_name`` + ``artifact_version``
8. ``artifact_version_id``
9. ``infer_artifact=True`` (an output of the running step; ``artifact_name`` picks one)
10. nothing: the running step

Unlike the reference, an argument the chosen form would silently ignore is
an error. Inside a step the call never looks anything up and never blocks.
Outside a step, names and prefixes are checked against the local views (when
a database exists), so a typo raises at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from metastream.errors import AmbiguousReference, ReferenceNotFound, StoreError
from metastream.pipelines.context import current_step
from metastream.pipelines.emit import (
    Deferred,
    LogHandle,
    check_size,
    encode_metadata_event,
    publish_metadata,
    settings,
)
from metastream.pipelines.runs import local_names
from metastream.schemas import (
    ArtifactByName,
    ById,
    MetadataLogged,
    ModelByName,
    RunByName,
    StepByName,
    Target,
    as_uuid,
    new_id,
    prepare_metadata,
)

FORMS = """\
Possible ways to call log_metadata:
    log_metadata(metadata)                                   # inside a step: that step
    log_metadata(metadata, step_name=..., run_id_name_or_prefix=...)
    log_metadata(metadata, step_id=...)
    log_metadata(metadata, run_id_name_or_prefix=...)
    log_metadata(metadata, infer_model=True)                 # inside a step with a model
    log_metadata(metadata, model_name=..., model_version=...)
    log_metadata(metadata, model_version_id=...)
    log_metadata(metadata, infer_artifact=True)              # inside a step with one output
    log_metadata(metadata, artifact_name=..., infer_artifact=True)
    log_metadata(metadata, artifact_name=..., artifact_version=...)
    log_metadata(metadata, artifact_version_id=...)"""


def log_metadata(
    metadata: Mapping[str, Any],
    step_id: uuid.UUID | str | None = None,
    step_name: str | None = None,
    run_id_name_or_prefix: uuid.UUID | str | None = None,
    artifact_version_id: uuid.UUID | str | None = None,
    artifact_name: str | None = None,
    artifact_version: str | int | None = None,
    infer_artifact: bool = False,
    model_version_id: uuid.UUID | str | None = None,
    model_name: str | None = None,
    model_version: str | int | None = None,
    infer_model: bool = False,
) -> LogHandle:
    """Publish ``metadata`` for one entity; returns a handle naming the event.

    Raises ``TypeError``/``ValueError`` for bad keys, values or argument
    combinations, ``KeyError`` for an unknown name (outside a step), and
    ``ValueError`` for an ambiguous prefix, a value nested more than
    ``METASTREAM_MAX_DEPTH`` deep, a value over ``METASTREAM_MAX_VALUE_BYTES``
    or an event over ``METASTREAM_MAX_EVENT_BYTES`` (each names the key, or
    gives the key count and size).
    """
    prepared = prepare_metadata(metadata, settings().max_depth)
    if (
        step_id is None
        and step_name is None
        and run_id_name_or_prefix is None
        and artifact_version_id is None
        and artifact_name is None
        and artifact_version is None
        and model_version_id is None
        and model_name is None
        and model_version is None
        and not infer_artifact
        and not infer_model
    ):  # the common case, inside a step: no lookups
        state = current_step.get()
        if state is None:
            raise ValueError(
                "log_metadata() was called outside a step without saying what the metadata is "
                "for; pass step_id, step_name + run_id_name_or_prefix, run_id_name_or_prefix, "
                "artifact_name + artifact_version, artifact_version_id, model_name + "
                "model_version or model_version_id"
            )
        return _publish(state.target, prepared)
    given = {
        name: value
        for name, value in (
            ("step_id", step_id),
            ("step_name", step_name),
            ("run_id_name_or_prefix", run_id_name_or_prefix),
            ("artifact_version_id", artifact_version_id),
            ("artifact_name", artifact_name),
            ("artifact_version", artifact_version),
            ("infer_artifact", infer_artifact or None),
            ("model_version_id", model_version_id),
            ("model_name", model_name),
            ("model_version", model_version),
            ("infer_model", infer_model or None),
        )
        if value is not None
    }
    target, used = _choose(given)
    ignored = [name for name in given if name not in used]
    if ignored:
        raise ValueError(
            f"log_metadata(): {' and '.join(used)} decide(s) the target, so "
            f"{', '.join(ignored)} would be ignored; pass only one way of naming the target\n"
            + FORMS
        )
    if target is None:  # infer_artifact: held until the step's outputs exist
        return _defer(prepared, artifact_name)
    if current_step.get() is None and not isinstance(target, ById):
        check_reference(target)
    return _publish(target, prepared)


def _choose(given: dict[str, Any]) -> tuple[Target | None, tuple[str, ...]]:
    """The target and the arguments that chose it, following the reference's order."""
    has = given.__contains__
    if has("step_id"):
        return ById(kind="step_run", id=_id("step_id", given["step_id"])), ("step_id",)
    if has("step_name") and has("run_id_name_or_prefix"):
        run = str(given["run_id_name_or_prefix"])
        return StepByName(run=run, step_name=str(given["step_name"])), (
            "step_name",
            "run_id_name_or_prefix",
        )
    if has("run_id_name_or_prefix"):
        return RunByName(name_id_or_prefix=str(given["run_id_name_or_prefix"])), (
            "run_id_name_or_prefix",
        )
    if has("model_name") and has("model_version"):
        return ModelByName(name=str(given["model_name"]), version=str(given["model_version"])), (
            "model_name",
            "model_version",
        )
    if has("model_version_id"):
        return ById(kind="model_version", id=_id("model_version_id", given["model_version_id"])), (
            "model_version_id",
        )
    if has("infer_model"):
        return _inferred_model(), ("infer_model",)
    if has("artifact_name") and has("artifact_version"):
        target = ArtifactByName(
            name=str(given["artifact_name"]), version=str(given["artifact_version"])
        )
        return target, ("artifact_name", "artifact_version")
    if has("artifact_version_id"):
        found = _id("artifact_version_id", given["artifact_version_id"])
        return ById(kind="artifact_version", id=found), ("artifact_version_id",)
    if has("infer_artifact"):
        return None, ("infer_artifact", "artifact_name")
    raise ValueError(f"log_metadata(): {', '.join(given)} alone do(es) not name a target\n" + FORMS)


def _id(name: str, value: Any) -> uuid.UUID:
    try:
        return as_uuid(value)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"log_metadata(): {name}={value!r} is not a UUID") from None


def _inferred_model() -> ById:
    state = current_step.get()
    if state is None:
        raise ValueError(
            "log_metadata(infer_model=True) works inside a step; outside one, pass "
            "model_name + model_version or model_version_id"
        )
    if state.model is None:
        raise ValueError(
            f"log_metadata(infer_model=True): step {state.name!r} has no model; pass "
            "model=Model(...) to @step or @pipeline"
        )
    return ById(kind="model_version", id=state.model.id)


def _publish(target: Target, prepared: dict[str, Any]) -> LogHandle:
    return LogHandle((publish_metadata(target, prepared),), target)


def _defer(prepared: dict[str, Any], artifact_name: str | None) -> LogHandle:
    state = current_step.get()
    if state is None:
        raise ValueError(
            "log_metadata(infer_artifact=True) works inside a step with outputs; outside one, "
            "pass artifact_version_id or artifact_name + artifact_version"
        )
    outputs = state.outputs
    if outputs is not None:  # known from the annotation: check now, as the reference does
        if artifact_name is not None and artifact_name not in outputs:
            raise ValueError(
                f"log_metadata(infer_artifact=True): step {state.name!r} has no output "
                f"{artifact_name!r}; its outputs: {', '.join(outputs) or 'none'}"
            )
        if artifact_name is None and len(outputs) != 1:
            raise ValueError(
                f"log_metadata(infer_artifact=True): step {state.name!r} has "
                f"{len(outputs) or 'no'} outputs ({', '.join(outputs) or 'none'}); pass "
                "artifact_name= to choose one"
            )
    event_id = new_id()
    where = f"output {artifact_name or '(the only one)'} of step {state.name!r}"
    # the event as it will be published (the artifact's id is not known yet, but
    # its size is), so the size limits are checked now, at the call
    future = ById(kind="artifact_version", id=uuid.UUID(int=0))
    body = encode_metadata_event(
        MetadataLogged(event_id=event_id, target=future, metadata=prepared)
    )
    check_size(prepared, len(body), where)
    deferred = Deferred()
    state.artifact_metadata.append((artifact_name, event_id, prepared, deferred))
    return LogHandle((event_id,), where, deferred)


# -- checking names outside a step ---------------------------------------------

_reader_lock = threading.Lock()
_reader: Any = None


def _views() -> Any:
    """The local views, if this machine has a database (else ``None``: nothing to check)."""
    global _reader
    from metastream.query import Reader

    path = settings().db
    if _reader is not None and _reader.path == path:
        return _reader
    if not path.exists():
        return None
    try:
        _reader = Reader(path)
    except StoreError:
        return None
    return _reader


def _known_locally(target: Target) -> bool:
    with local_names.lock:
        if isinstance(target, RunByName):
            return target.name_id_or_prefix in local_names.runs
        if isinstance(target, StepByName):
            run_id = local_names.runs.get(target.run)
            return run_id is not None and (run_id, target.step_name) in local_names.steps
        if isinstance(target, ModelByName):
            return (target.name, target.version) in local_names.models
    return False


def check_reference(target: Target, wait: float = 1.0) -> None:
    """Raise ``KeyError``/``ValueError`` now if ``target`` names nothing or several things.

    A name this process created itself passes at once. Otherwise the views
    are asked; when they do not know the name yet, they get ``wait`` seconds
    to catch up (the entity may still be on its way through the stream).
    """
    if _known_locally(target):
        return
    with _reader_lock:
        reader = _views()
        if reader is None:
            return
        deadline = time.monotonic() + wait
        while True:
            try:
                reader.resolve(target)
                return
            except AmbiguousReference:
                raise
            except ReferenceNotFound as missing:
                if time.monotonic() >= deadline:
                    raise ReferenceNotFound(f"log_metadata(): {missing}") from None
            time.sleep(0.05)


__all__ = ["FORMS", "check_reference", "log_metadata"]
