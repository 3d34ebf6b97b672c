"""What is running now: the pipeline run and the step, as context variables.

Everything ``log_metadata`` needs inside a step is here — ids of the run,
the step, the model version and the outputs — so a call inside a step never
looks anything up.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from metastream.pipelines.emit import Deferred
from metastream.pipelines.model import Model
from metastream.pipelines.outputs import Output
from metastream.schemas import ById

if TYPE_CHECKING:
    from metastream.pipelines.components import StackComponent


@dataclass
class ModelVersionContext:
    model: Model
    id: uuid.UUID


@dataclass
class RunContext:
    """A pipeline run in progress."""

    id: uuid.UUID
    name: str
    pipeline_name: str
    extra: dict[str, Any]
    model: ModelVersionContext | None
    components: list[StackComponent]
    artifact_root: FsPath
    used_step_names: set[str] = field(default_factory=set)
    models: dict[tuple[str, str | None], ModelVersionContext] = field(default_factory=dict)
    published: list[bytes] = field(default_factory=list)
    """The ids of the events published for this run: what ``run.wait()`` waits for."""

    def invocation_name(self, name: str, explicit: bool = False) -> str:
        """A step name unique in this run: ``train``, then ``train_2``, ``train_3``...

        An ``explicit`` name (a step's ``id=``) must not be taken already.
        """
        if name in self.used_step_names:
            if explicit:
                raise ValueError(f"run {self.name!r} already has a step {name!r}")
            count = 2
            while f"{name}_{count}" in self.used_step_names:
                count += 1
            name = f"{name}_{count}"
        self.used_step_names.add(name)
        return name


@dataclass
class StepState:
    """A step run in progress."""

    id: uuid.UUID
    name: str
    run: RunContext
    model: ModelVersionContext | None
    target: ById = field(init=False)
    """Where ``log_metadata`` with no target goes: this step run."""
    outputs: list[str] | None = None
    """Output names when known before the step returns (declared or annotated)."""
    produced: list[Output] = field(default_factory=list)
    """What the step returned, set when it returns."""
    artifact_metadata: list[tuple[str | None, bytes, dict[str, Any], Deferred]] = field(
        default_factory=list
    )
    """``infer_artifact`` metadata held until the outputs exist: (output, event id, metadata)."""

    def __post_init__(self) -> None:
        self.target = ById(kind="step_run", id=self.id)


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "metastream_run", default=None
)
current_step: contextvars.ContextVar[StepState | None] = contextvars.ContextVar(
    "metastream_step", default=None
)
composing: contextvars.ContextVar[PipelineContext | None] = contextvars.ContextVar(
    "metastream_pipeline", default=None
)


@dataclass(frozen=True)
class Named:
    """Something with a name and an id: ``context.pipeline_run``, ``context.step_run``."""

    name: str
    id: uuid.UUID | None = None


class StepContext:
    """What a step can know about itself: ``get_step_context()``."""

    def __init__(self, state: StepState) -> None:
        self._state = state

    @property
    def pipeline(self) -> Named:
        return Named(self._state.run.pipeline_name)

    @property
    def pipeline_run(self) -> Named:
        return Named(self._state.run.name, self._state.run.id)

    @property
    def step_run(self) -> Named:
        return Named(self._state.name, self._state.id)

    @property
    def model(self) -> Model:
        """The step's model (from ``@step(model=...)`` or ``@pipeline(model=...)``)."""
        if self._state.model is None:
            raise RuntimeError(
                f"step {self._state.name!r} has no model: pass model=Model(...) to @step or "
                "@pipeline"
            )
        return self._state.model.model

    @property
    def model_version_id(self) -> uuid.UUID | None:
        return self._state.model.id if self._state.model else None

    def get_output_artifact_uri(self, output_name: str | None = None) -> str:
        """Where this step's output ``output_name`` should be written.

        metastream stores metadata, not artifacts: this is a directory under
        ``$METASTREAM_HOME/artifacts`` reserved for the output (created on
        first use) and recorded as the artifact version's ``uri``.
        """
        name = output_name or "output"
        outputs = self._state.outputs
        if outputs is not None and name not in outputs:
            raise ValueError(
                f"step {self._state.name!r} has no output {name!r} (its outputs: "
                f"{', '.join(outputs) or 'none'})"
            )
        directory = output_uri(self._state, name)
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory)

    def get_output_materializer(self, output_name: str | None = None) -> Any:
        raise NotImplementedError(
            "metastream records metadata and does not store artifacts, so outputs have no "
            "materializers; write the output yourself (for example under "
            "get_output_artifact_uri()) and describe it with log_metadata(infer_artifact=True)"
        )


def output_uri(state: StepState, output: str) -> FsPath:
    run = state.run
    return run.artifact_root / run.pipeline_name / run.name / state.name / output


class PipelineContext:
    """What a pipeline function can know while it runs: ``get_pipeline_context()``."""

    def __init__(self, name: str, extra: dict[str, Any], model: Model | None) -> None:
        self.name = name
        self.extra = extra
        self.model = model


def get_step_context() -> StepContext:
    """The running step's context; ``RuntimeError`` outside a step."""
    state = current_step.get()
    if state is None:
        raise RuntimeError(
            "The step context is only available inside a step function (a function decorated "
            "with @step, or a `with run.step(...)` block)."
        )
    return StepContext(state)


def get_pipeline_context() -> PipelineContext:
    """The running pipeline's context; ``RuntimeError`` outside a pipeline function."""
    context = composing.get()
    if context is None:
        raise RuntimeError(
            "The pipeline context is only available inside a pipeline function (a function "
            "decorated with @pipeline, or a `with pipeline_run(...)` block)."
        )
    return context
