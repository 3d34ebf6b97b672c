"""Running pipelines and steps: their lifecycle events, components and outputs.

``pipeline_run(...)`` and ``PipelineRun.step(...)`` are the context managers
everything else is built on: the ``@pipeline``/``@step`` decorators, and code
that another orchestrator drives (Airflow, Prefect, plain scripts).
"""

from __future__ import annotations

import datetime
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from metastream.errors import RunNameTaken
from metastream.pipelines.components import StackComponent, StepRunInfo, configured_components
from metastream.pipelines.context import (
    ModelVersionContext,
    PipelineContext,
    RunContext,
    StepContext,
    StepState,
    composing,
    current_run,
    current_step,
    output_uri,
)
from metastream.pipelines.emit import log, publish, publish_metadata, published_ids, settings
from metastream.pipelines.model import Model
from metastream.pipelines.outputs import Output
from metastream.schemas import (
    ArtifactVersionRegistered,
    ById,
    MetadataType,
    ModelVersionRegistered,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepStarted,
    Target,
    new_uuid,
    prepare_metadata,
)

if TYPE_CHECKING:
    from metastream.query.views import RunView

_MAX_ERROR = 2000


class LocalNames:
    """Entities this process created, so that checks by name need not wait for the views."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, uuid.UUID] = {}
        self.steps: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self.models: set[tuple[str, str]] = set()


local_names = LocalNames()


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def generated_run_name(pipeline_name: str) -> str:
    now = datetime.datetime.now()
    return f"{pipeline_name}-{now:%Y_%m_%d-%H_%M_%S_%f}-{uuid.uuid4().hex[:4]}"


def _component_metadata(
    component: StackComponent,
    call: Callable[[], dict[str, MetadataType]],
    target: Target,
    where: str,
) -> None:
    """Log what a component contributes; a failing component is skipped with a warning.

    So is one that returns what ``log_metadata`` would refuse (a bad key, an
    unsupported type, a value over the size limit).
    """
    try:
        metadata = call()
        if metadata:
            prepared = prepare_metadata(metadata, settings().max_depth)
            publish_metadata(target, prepared, component=component.name)
    except Exception as exc:
        log.warning(
            "metastream: stack component %r failed to give %s metadata and is skipped: %s",
            component.name,
            where,
            describe_error(exc),
        )


def _model_version(run: RunContext, model: Model | None) -> ModelVersionContext | None:
    """The run's version of ``model``, registered once per run."""
    if model is None:
        return None
    key = (model.name, model.version)
    found = run.models.get(key)
    if found is None:
        found = run.models[key] = ModelVersionContext(model, model.version_id())
        publish(
            ModelVersionRegistered(
                model_version_id=found.id, name=model.name, version=model.version, run_id=run.id
            )
        )
        if model.version is not None:
            with local_names.lock:
                local_names.models.add((model.name, model.version))
    return found


class PipelineRun:
    """A pipeline run in progress (or finished): its name, id and status."""

    def __init__(self, context: RunContext) -> None:
        self._context = context
        self.status: RunStatus = "running"
        self.error: str | None = None

    @property
    def id(self) -> uuid.UUID:
        return self._context.id

    @property
    def name(self) -> str:
        return self._context.name

    @property
    def pipeline_name(self) -> str:
        return self._context.pipeline_name

    def __repr__(self) -> str:
        return f"PipelineRun(name={self.name!r}, id={self.id}, status={self.status!r})"

    @property
    def event_ids(self) -> tuple[bytes, ...]:
        """The ids of every event this run published (lifecycle, metadata, outputs)."""
        return tuple(self._context.published)

    @property
    def target(self) -> str:
        return f"pipeline run {self.name!r}"

    @property
    def deferred(self) -> None:
        return None  # artifact metadata held back is published before the step ends

    def wait(self, timeout: float = 10.0) -> RunView:
        """Wait until everything this run published is in the views, then return the run's view.

        ``run.wait().run_metadata`` is the run's metadata with its ``step::key``
        rollups. Raises ``EventRejected`` if an event of the run was rejected,
        ``TimeoutError`` (saying what it waits for) after ``timeout`` seconds.
        Reads the database of ``$METASTREAM_DB`` (see ``Client``).
        """
        from metastream.query import Client

        with Client() as client:
            return client.wait_for(self, timeout)

    @contextmanager
    def step(
        self,
        name: str,
        *,
        model: Model | None = None,
        outputs: Sequence[str] | None = None,
    ) -> Iterator[StepContext]:
        """Run a step of this run: ``with run.step("train") as step: ...``.

        ``outputs`` names the step's outputs; each becomes an artifact version
        when the block ends without an error.
        """
        declared = None if outputs is None else [Output(o, o) for o in outputs]
        with step_run(self._context, name, model=model, declared=declared) as state:
            yield StepContext(state)
            state.produced = declared or []


@contextmanager
def pipeline_run(
    pipeline_name: str,
    *,
    run_name: str | None = None,
    model: Model | None = None,
    extra: dict[str, Any] | None = None,
    components: Sequence[StackComponent] = (),
) -> Iterator[PipelineRun]:
    """Record a pipeline run around a block of code.

    ``with pipeline_run("training") as run:`` then ``with run.step("train"):``
    inside. An exception in the block marks the run failed and propagates.
    """
    if current_run.get() is not None:
        raise RuntimeError(
            f"pipeline {pipeline_name!r} was started inside run {current_run.get().name!r}; "  # type: ignore[union-attr]
            "pipelines do not nest"
        )
    name = run_name or generated_run_name(pipeline_name)
    if run_name is not None and _run_in_views(name):
        raise _name_taken(name)
    context = RunContext(
        id=new_uuid(),
        name=name,
        pipeline_name=pipeline_name,
        extra=dict(extra or {}),
        model=None,
        components=[*components, *configured_components()],
        artifact_root=settings().home / "artifacts",
    )
    with local_names.lock:
        if local_names.runs.setdefault(name, context.id) != context.id:  # this process's own
            raise _name_taken(name)
    ids_token = published_ids.set(context.published)
    publish(RunStarted(run_id=context.id, name=name, pipeline_name=pipeline_name))
    context.model = _model_version(context, model)
    run_target = ById(kind="pipeline_run", id=context.id)
    for component in context.components:
        _component_metadata(
            component,
            lambda c=component: c.get_pipeline_run_metadata(context.id),  # type: ignore[misc]
            run_target,
            "pipeline run",
        )
    run = PipelineRun(context)
    run_token = current_run.set(context)
    compose_token = composing.set(PipelineContext(pipeline_name, context.extra, model))
    try:
        yield run
    except BaseException as exc:
        run.status, run.error = "failed", describe_error(exc)
        raise
    else:
        run.status = "completed"
    finally:
        composing.reset(compose_token)
        current_run.reset(run_token)
        publish(RunFinished(run_id=context.id, status=run.status, error=run.error))
        published_ids.reset(ids_token)


def _name_taken(name: str) -> RunNameTaken:
    """Run names are unique: a run started in this process, or in the views, has ``name``.

    Two processes that start runs with one name at the same moment both pass
    the check (nothing but the views is shared): both runs are recorded, and
    the name then refers to two runs, so reading it raises an ambiguity error
    listing both ids.
    """
    return RunNameTaken(
        f"a pipeline run named {name!r} exists already; run names are unique: "
        "choose another run_name, or leave it out to get a generated one"
    )


def _run_in_views(name: str) -> bool:
    from metastream.errors import StoreError
    from metastream.query.reader import Reader

    db = settings().db
    if not db.exists():
        return False
    try:
        with Reader(db) as reader:
            return reader.run_named(name) is not None
    except StoreError:
        return False  # not a database we can read: the consumer will say so


@contextmanager
def step_run(
    run: RunContext,
    name: str,
    *,
    model: Model | None = None,
    declared: list[Output] | None = None,
    explicit_name: bool = False,
) -> Iterator[StepState]:
    """Record one step: lifecycle events, component metadata, outputs as artifacts."""
    if current_step.get() is not None:
        raise RuntimeError(
            f"step {name!r} was called inside step {current_step.get().name!r}; "  # type: ignore[union-attr]
            "call steps from the pipeline function"
        )
    state = StepState(
        id=new_uuid(),
        name=run.invocation_name(name, explicit=explicit_name),
        run=run,
        model=_model_version(run, model) if model is not None else run.model,
    )
    state.outputs = None if declared is None else [o.name for o in declared]
    started = datetime.datetime.now(datetime.UTC)
    with local_names.lock:
        local_names.steps[(run.id, state.name)] = state.id
    publish(StepStarted(step_id=state.id, run_id=run.id, name=state.name))
    token = current_step.set(state)
    error: str | None = None
    try:
        yield state
        _register_outputs(state)
    except BaseException as exc:
        error = describe_error(exc)
        _discard_buffered(state, f"step {state.name!r} failed ({error})")
        raise
    finally:
        current_step.reset(token)
        status: RunStatus = "failed" if error else "completed"
        info = StepRunInfo(
            step_run_id=state.id,
            step_name=state.name,
            run_id=run.id,
            run_name=run.name,
            pipeline_name=run.pipeline_name,
            status=status,
            error=error,
            started=started,
            finished=datetime.datetime.now(datetime.UTC),
        )
        for component in run.components:
            _component_metadata(
                component,
                lambda c=component: c.get_step_run_metadata(info),  # type: ignore[misc]
                state.target,
                "step run",
            )
        publish(StepFinished(step_id=state.id, status=status, error=error))


def _register_outputs(state: StepState) -> None:
    """Each produced output becomes an artifact version, with its buffered metadata."""
    produced = [o.name for o in state.produced]
    wanted = {o for o, _, _, _ in state.artifact_metadata}
    if None in wanted and len(produced) != 1:
        _discard_buffered(state, "the step did not produce exactly one output")
        raise ValueError(
            f"log_metadata(infer_artifact=True) in step {state.name!r} needs exactly one output, "
            f"but the step produced {len(produced)} ({', '.join(produced) or 'none'}); "
            "pass artifact_name= to choose one"
        )
    missing = sorted(str(o) for o in wanted - {None} - set(produced))
    if missing:
        _discard_buffered(state, f"the step has no output {', '.join(missing)}")
        raise ValueError(
            f"log_metadata(infer_artifact=True, artifact_name={missing[0]!r}) in step "
            f"{state.name!r}: the step's outputs are {', '.join(produced) or 'none'}"
        )
    ids: dict[str, uuid.UUID] = {}
    for output in state.produced:
        ids[output.name] = new_uuid()
        publish(
            ArtifactVersionRegistered(
                artifact_version_id=ids[output.name],
                # an output's artifact is named by Annotated, else after the step
                name=output.artifact or f"{state.run.pipeline_name}::{state.name}::{output.name}",
                run_id=state.run.id,
                step_id=state.id,
                uri=str(output_uri(state, output.name)),
            )
        )
    for wanted_output, event_id, metadata, deferred in state.artifact_metadata:
        chosen = wanted_output if wanted_output is not None else produced[0]
        target = ById(kind="artifact_version", id=ids[chosen])
        publish_metadata(target, metadata, event_id=event_id)  # sizes checked at the call
        deferred.published.set()
    state.artifact_metadata.clear()


def _discard_buffered(state: StepState, reason: str) -> None:
    if not state.artifact_metadata:
        return
    keys = sorted({k for _, _, metadata, _ in state.artifact_metadata for k in metadata})
    log.warning(
        "metastream: artifact metadata logged in step %r (%s) was not saved: %s",
        state.name,
        ", ".join(keys),
        reason,
    )
    for _, _, _, deferred in state.artifact_metadata:
        deferred.discard(f"artifact metadata not saved: {reason}")
    state.artifact_metadata.clear()
